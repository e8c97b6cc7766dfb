package kamailio

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/sipedge/sipedge/tests/proc"
)

// Kamailio starts with a dispatcher list, answers jsonrpcs, and hashes
// like the reference says (kamailio-behaviour.md §2.1: "abc" → 7167810,
// slot 10 of 100).
func TestStartRPC(t *testing.T) {
	t.Parallel()
	lo := netip.MustParseAddr("127.0.0.1")
	k := Start(t, Config{
		Listen:         []netip.AddrPort{netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo))},
		Modules:        []string{"sl", "dispatcher"},
		DispatcherList: "1 sip:127.0.0.1:5080 0 5\n1 sip:127.0.0.1:5082 1 9\n",
		Routes:         "request_route {\n\tsl_send_reply(\"404\", \"Not Here\");\n}\n",
	})
	var h struct {
		HashID int64 `json:"hashid"`
		Slot   int   `json:"slot"`
	}
	if err := json.Unmarshal(k.MustRPC(t, "dispatcher.hash", 100, "abc"), &h); err != nil {
		t.Fatal(err)
	}
	if h.HashID != 7167810 || h.Slot != 10 {
		t.Errorf("dispatcher.hash 100 abc = %+v, want hashid 7167810 slot 10", h)
	}
	var l struct {
		NRSETS  int `json:"NRSETS"`
		RECORDS []struct {
			SET struct {
				ID      int `json:"ID"`
				TARGETS []struct {
					DEST struct {
						URI   string `json:"URI"`
						FLAGS string `json:"FLAGS"`
					} `json:"DEST"`
				} `json:"TARGETS"`
			} `json:"SET"`
		} `json:"RECORDS"`
	}
	raw := k.MustRPC(t, "dispatcher.list")
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatal(err)
	}
	if l.NRSETS != 1 || len(l.RECORDS) != 1 || len(l.RECORDS[0].SET.TARGETS) != 2 ||
		l.RECORDS[0].SET.TARGETS[0].DEST.URI != "sip:127.0.0.1:5082" || l.RECORDS[0].SET.TARGETS[0].DEST.FLAGS != "IX" {
		t.Errorf("dispatcher.list = %s, want set 1 with sip:127.0.0.1:5082 (IX, priority 9) first", raw)
	}
	if _, err := k.RPC(t.Context(), "no.such.method"); err == nil {
		t.Error("an unknown method answered without error")
	}
}
