package sipp

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/proc"
)

// testdata/uas_rr-direct.msg is the log of uas_rr.xml answering two calls
// of uac_rr.xml sent straight to it (no proxy), as SIPp 3.6.1 wrote it.
func TestReadMessagesSIPpLog(t *testing.T) {
	msgs, err := ReadMessages("testdata/uas_rr-direct.msg")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 12 {
		t.Fatalf("got %d messages, want 12: %v", len(msgs), msgs)
	}
	for _, tc := range []struct {
		name   string
		got    int
		wanted int
	}{
		{"received INVITE", len(msgs.Requests(Received, "INVITE")), 2},
		{"received ACK", len(msgs.Requests(Received, "ACK")), 2},
		{"received BYE", len(msgs.Requests(Received, "BYE")), 2},
		{"received requests", len(msgs.Requests(Received, "")), 6},
		{"sent 180", len(msgs.Responses(Sent, 180)), 2},
		{"sent 200", len(msgs.Responses(Sent, 200)), 4},
		{"call ids", len(msgs.CallIDs()), 2},
	} {
		if tc.got != tc.wanted {
			t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.wanted)
		}
	}
	inv := msgs.Requests(Received, "INVITE")[0]
	if got, want := inv.Branch(), "z9hG4bK-15897-1-0"; got != want {
		t.Errorf("INVITE branch = %q, want %q", got, want)
	}
	if n, m := inv.CSeq(); n != 1 || m != "INVITE" {
		t.Errorf("INVITE CSeq = %d %s", n, m)
	}
	if !strings.HasPrefix(inv.Body, "v=0") || !strings.HasSuffix(inv.Raw, "PCMU/8000\r\n") {
		t.Errorf("INVITE body not cut at its byte count: body %q", inv.Body)
	}
	if inv.Time.IsZero() {
		t.Error("INVITE has no time stamp")
	}
	ack := msgs.Requests(Received, "ACK")[0]
	if got, want := ack.StartLine, "ACK sip:127.0.0.1:15080;transport=UDP SIP/2.0"; got != want {
		t.Errorf("ACK start line = %q, want %q (uac_rr.xml's [next_url])", got, want)
	}
	if got := ack.Values("Route"); len(got) != 0 {
		t.Errorf("ACK has Route %q without Record-Route", got)
	}
}

func TestParseMessagesEdgeCases(t *testing.T) {
	const sep = "----------------------------------------------- 2026-11-22 07:53:51.167629\n"
	bye := "BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx, SIP/2.0/UDP 10.0.0.2\r\n" +
		"i: cid-1\r\nSubject: folded\r\n  line\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n"
	for _, tc := range []struct {
		name    string
		log     string
		want    int
		wantErr bool
		check   func(t *testing.T, ms Messages)
	}{
		{
			name: "compact and folded headers",
			log:  sep + "UDP message received [" + strconv.Itoa(len(bye)) + "] bytes :\n\n" + bye + "\n\n",
			want: 1,
			check: func(t *testing.T, ms Messages) {
				m := ms[0]
				if m.CallID() != "cid-1" || m.Branch() != "z9hG4bKx" || m.Get("Subject") != "folded line" {
					t.Errorf("got Call-ID %q branch %q Subject %q", m.CallID(), m.Branch(), m.Get("Subject"))
				}
			},
		},
		{
			name: "wrong byte count falls back to the next block",
			log: sep + "UDP message sent (5 bytes):\n\n" + bye + "\n\n" +
				sep + "UDP message received [" + strconv.Itoa(len(bye)) + "] bytes :\n\n" + bye + "\n\n",
			want: 2,
			check: func(t *testing.T, ms Messages) {
				if ms[0].Dir != Sent || ms[1].Dir != Received || ms[0].Raw != strings.TrimRight(bye, "\r\n") {
					t.Errorf("got %v", ms)
				}
			},
		},
		{
			name: "unknown block skipped",
			log:  sep + "something else happened\n\n" + sep + "UDP message sent (1 bytes):\n\n" + bye,
			want: 1,
		},
		{
			name:    "unparsable message reported",
			log:     sep + "UDP message sent (3 bytes):\n\nxyz\n\n" + sep + "UDP message sent (1 bytes):\n\n" + bye,
			want:    1,
			wantErr: true,
		},
		{name: "empty", log: "", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := ParseMessages([]byte(tc.log))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(ms) != tc.want {
				t.Fatalf("got %d messages, want %d: %v", len(ms), tc.want, ms)
			}
			if tc.check != nil {
				tc.check(t, ms)
			}
		})
	}
}

// TestScenarios runs the testdata scenarios against each other, without a
// proxy: the helpers, the logs and the scenarios work before any proxy is
// involved.
func TestScenarios(t *testing.T) {
	NeedSIPp(t)
	lo := netip.MustParseAddr("127.0.0.1")
	t.Run("record-route pair", func(t *testing.T) {
		uas := Start(t, Options{Name: "uas", Scenario: UASRecordRoute, Local: netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo))})
		uac := Start(t, Options{Name: "uac", Scenario: UACRecordRoute, Local: netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo)),
			Remote: uas.Opts.Local.String(), Calls: 5, Rate: 50})
		res := uac.Wait(t)
		if res.ExitCode != 0 || res.Stats.Successful != 5 || res.Stats.Failed != 0 {
			t.Fatalf("uac: exit %d, stats %+v", res.ExitCode, res.Stats)
		}
		uas.Stop()
		msgs := uas.Messages(t)
		for _, method := range []string{"INVITE", "ACK", "BYE"} {
			if got := len(msgs.Requests(Received, method).CallIDs()); got != 5 {
				t.Errorf("uas saw %s of %d calls, want 5", method, got)
			}
		}
	})
	t.Run("503 server", func(t *testing.T) {
		uas := Start(t, Options{Name: "uas503", Scenario: UAS503, Local: netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo))})
		uac := Start(t, Options{Name: "uac", Scenario: UAC, Local: netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo)),
			Remote: uas.Opts.Local.String(), Calls: 3, Rate: 50})
		res := uac.Wait(t)
		if res.ExitCode != 1 || res.Stats.Failed != 3 {
			t.Errorf("uac: exit %d, stats %+v; want exit 1 and 3 failed calls", res.ExitCode, res.Stats)
		}
		// The client's ACK is its last act: it may still be in flight.
		msgs := uas.WaitMessages(t, 2*time.Second, func(ms Messages) bool {
			return len(ms.Requests(Received, "ACK").CallIDs()) >= 3
		})
		uas.Stop()
		if got := len(msgs.Responses(Sent, 503).CallIDs()); got != 3 {
			t.Errorf("uas sent 503 in %d calls, want 3", got)
		}
		if got := len(msgs.Requests(Received, "ACK").CallIDs()); got != 3 {
			t.Errorf("uas got ACK in %d calls, want 3", got)
		}
	})
	t.Run("cancel pair", func(t *testing.T) {
		uas := Start(t, Options{Name: "uas", Scenario: UASCancel, Local: netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo))})
		uac := Start(t, Options{Name: "uac", Scenario: UACCancel, Local: netip.AddrPortFrom(lo, proc.FreeUDPPort(t, lo)),
			Remote: uas.Opts.Local.String(), Calls: 3, Rate: 50, Args: []string{"-key", "tenant", "none"}})
		if res := uac.Wait(t); res.ExitCode != 0 || res.Stats.Successful != 3 {
			t.Fatalf("uac: exit %d, stats %+v", res.ExitCode, res.Stats)
		}
		uas.Stop()
		msgs := uas.Messages(t)
		for _, method := range []string{"INVITE", "CANCEL", "ACK"} {
			if got := len(msgs.Requests(Received, method).CallIDs()); got != 3 {
				t.Errorf("uas saw %s of %d calls, want 3", method, got)
			}
		}
		if got := len(msgs.Responses(Sent, 487).CallIDs()); got != 3 {
			t.Errorf("uas sent 487 in %d calls, want 3", got)
		}
	})
}
