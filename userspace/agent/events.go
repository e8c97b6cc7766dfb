package agent

import (
	"context"
	"fmt"

	"github.com/sipedge/sipedge/userspace/config"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/events"
	"github.com/sipedge/sipedge/userspace/rpc"
)

// publishStartStates publishes dispatcher:dst-down once for each
// destination that is down when the agent starts (inactive or disabled in
// the list file), so every destination's state is visible from the start,
// in the log, to the hook and to its queue: Kamailio fires the event only
// on a change, never for a destination loaded down (kamailio#4906; our
// deviation, docs/events.md). Destinations that are up get none: up is
// what a destination is until an event says otherwise.
func publishStartStates(bus *events.Bus, snap *dispatch.Snapshot) {
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
			bus.Publish(events.New(events.DstDown, events.F("set", set.ID), events.F("uri", dst.URI),
				events.F("iuid", dst.IUID), events.F("state", state), events.F("at", "start")))
		}
	}
}

// hookConfig is the hook's part of cfg.
func hookConfig(cfg *config.Config) events.HookConfig {
	return events.HookConfig{Command: cfg.Events.HookCommand, Timeout: cfg.Events.HookTimeout, Filter: cfg.Events.HookFilter}
}

// eventHook runs the events.hook_command for each event; its keys are
// live.
type eventHook struct{ h *events.Hook }

func (eventHook) Name() string                    { return "event hook" }
func (e eventHook) Run(ctx context.Context) error { return e.h.Run(ctx) }
func (e eventHook) Apply(s *Snapshot)             { e.h.SetConfig(hookConfig(s.Config)) }

// streamQueue is the queue of one events.subscribe stream.
const streamQueue = events.DefaultQueue

// EventsStats is events.stats' result.
type EventsStats struct {
	events.Stats
	Hook events.HookStats `json:"hook"`
}

// registerEvents adds events.subscribe (a stream of the events whose name
// starts with one of the params; none: all) and events.stats.
func (a *Agent) registerEvents(srv *rpc.Server) {
	srv.RegisterStream("events.subscribe", func(_ context.Context, p rpc.Params) (any, rpc.StreamFunc, error) {
		prefixes := make([]string, p.Len())
		for i := range prefixes {
			s, err := p.String(i)
			if err != nil {
				return nil, nil, err
			}
			if s == "" {
				return nil, nil, rpc.Errorf(rpc.CodeInvalidParams, "Invalid params", "param %d: an empty prefix; leave it out to get every event", i+1)
			}
			prefixes[i] = s
		}
		sub := a.events.Subscribe(events.SubscribeOptions{Name: fmt.Sprintf("rpc %v", prefixes), Queue: streamQueue, Match: events.Prefixes(prefixes...)})
		ack := struct {
			Subscribed []string `json:"subscribed"`
			Queue      int      `json:"queue"`
		}{prefixes, streamQueue}
		return ack, func(ctx context.Context, send func(any) error) error {
			defer sub.Close()
			for {
				e, err := sub.Next(ctx)
				if err != nil {
					return nil // the client or the server went away
				}
				if err := send(e); err != nil {
					return err
				}
			}
		}, nil
	})
	srv.Register("events.stats", func(context.Context, rpc.Params) (any, error) {
		return EventsStats{Stats: a.events.Stats(), Hook: a.hook.Stats()}, nil
	})
}
