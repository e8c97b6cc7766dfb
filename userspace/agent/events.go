package agent

import (
	"log/slog"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// logStartStates logs dispatcher:dst-down once for each destination that
// is down when the agent starts (inactive or disabled in the list file),
// so every destination's state is visible from the start: Kamailio fires
// the event only on a change, never for a destination loaded down
// (kamailio#4906). Destinations that are up get no line: up is what a
// destination is until an event says otherwise.
func logStartStates(log *slog.Logger, snap *dispatch.Snapshot) {
	for _, set := range snap.Sets() {
		for i := range set.Dests {
			dst := &set.Dests[i]
			if dst.Up() {
				continue
			}
			state := "inactive"
			if dst.Flags&dispatch.FlagDisabled != 0 {
				state = "disabled"
			}
			log.Info("dispatcher:dst-down", "set", set.ID, "uri", dst.URI, "iuid", dst.IUID, "state", state, "at", "start")
		}
	}
}
