package sipproxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// admitter refuses the INVITEs whose Call-ID starts with "over" and keeps
// what it was asked.
type admitter struct {
	mu    sync.Mutex
	asked []string // Call-ID, set, failover
}

func (a *admitter) admit(o Observed) Refusal {
	callID := string(o.Msg.CallID.Bytes(o.Data))
	a.mu.Lock()
	a.asked = append(a.asked, fmt.Sprintf("%s set=%d failover=%v", callID, o.SetID, o.Failover))
	a.mu.Unlock()
	if strings.HasPrefix(callID, "over") {
		return Refusal{Code: 486, Reason: "Busy Here", RetryAfter: 7}
	}
	return Refusal{}
}

func (a *admitter) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

// TestAdmit: Config.Admit is asked about INVITEs without a To tag, on the
// stateless and the failover path: a refused one is answered with the
// refusal's code, reason and Retry-After, and neither forwarded nor
// observed; an admitted one goes on. Each INVITE is asked about once, a
// failover one flagged Failover; other requests are not asked about.
func TestAdmit(t *testing.T) {
	for _, failover := range []bool{false, true} {
		name := "stateless"
		if failover {
			name = "failover"
		}
		t.Run(name, func(t *testing.T) {
			backend := startBackend(t, backend200)
			var adm admitter
			var obs observer
			_, edge := startTestProxy(t, Rule{Failover: failover}, func(c *Config) {
				c.Admit, c.Observe = adm.admit, obs.observe
			}, backend)
			c := newClient(t, edge)

			c.send(t, "INVITE", "over-1", 1)
			rs := c.readResponses(t, 3*time.Second, func(rs []response) bool { return len(rs) > 0 && rs[len(rs)-1].code >= 200 })
			if len(rs) != 1 || rs[0].code != 486 || !bytes.Contains(rs[0].raw, []byte("SIP/2.0 486 Busy Here\r\n")) ||
				!bytes.Contains(rs[0].raw, []byte("\r\nRetry-After: 7\r\n")) {
				t.Fatalf("refused INVITE answered %v, want one 486 Busy Here with Retry-After: 7", rs)
			}

			c.send(t, "INVITE", "fine-1", 1)
			if codes := c.waitFinal(t, "INVITE", 3*time.Second); codes[len(codes)-1] != 200 {
				t.Fatalf("admitted INVITE: %v, want 200", codes)
			}
			c.send(t, "BYE", "over-2", 2) // not an INVITE: not asked, forwarded
			for deadline := time.Now().Add(3 * time.Second); !slices.Contains(backend.methods(), "BYE"); {
				if time.Now().After(deadline) {
					t.Fatalf("the BYE was not forwarded: backend got %v", backend.methods())
				}
				time.Sleep(10 * time.Millisecond)
			}

			invites := 0
			for _, m := range backend.methods() {
				if m == "INVITE" {
					invites++
				}
			}
			if invites != 1 {
				t.Errorf("backend got %v, want the admitted INVITE only", backend.methods())
			}
			want := []string{fmt.Sprintf("over-1 set=1 failover=%v", failover), fmt.Sprintf("fine-1 set=1 failover=%v", failover)}
			if got := adm.calls(); !slices.Equal(got, want) {
				t.Errorf("Admit asked about %q, want %q (once each)", got, want)
			}
			n := 0
			for _, s := range obs.wait(3) {
				if s.what == "INVITE" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("observed %d INVITEs (%v), want the admitted one only", n, obs.wait(3))
			}
		})
	}
}
