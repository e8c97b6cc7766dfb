package sipproxy

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startStatelessProxy runs a Proxy with one stateless listener on a free
// loopback port, against the fixtures' dispatcher (set 1).
func startStatelessProxy(t *testing.T) (*Proxy, netip.AddrPort) {
	t.Helper()
	local := freeLoopbackPort(t)
	p, err := New(Config{
		Listeners:  []Listener{{Name: "edge", Addr: local, Rule: Rule{SetID: 1}}},
		Dispatcher: fixtureDispatcher(t),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return runProxy(t, p), local
}

// TestReplyMissingHeaderOnTheWire: a request without To, From, Call-ID or
// CSeq gets its "400 Missing X" on the wire (contract § Replies the proxy
// generates), also with Max-Forwards 0; the same without a header, as an
// ACK, gets nothing and is counted.
func TestReplyMissingHeaderOnTheWire(t *testing.T) {
	p, local := startStatelessProxy(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	me := c.LocalAddr().(*net.UDPAddr).AddrPort()
	headers := map[string]string{
		"To":      "To: <sip:bob@biloxi.example.com>\n",
		"From":    "From: <sip:alice@atlanta.example.com>;tag=1\n",
		"Call-ID": "Call-ID: missing-hdr-1\n",
		"CSeq":    "CSeq: 1 OPTIONS\n",
	}
	for _, missing := range []string{"To", "From", "Call-ID", "CSeq"} {
		t.Run(missing, func(t *testing.T) {
			msg := "OPTIONS sip:bob@10.0.0.11:5060 SIP/2.0\n" +
				"Via: SIP/2.0/UDP " + me.String() + ";rport;branch=z9hG4bKmiss" + missing + "\n" +
				"Max-Forwards: 0\n"
			for _, h := range []string{"To", "From", "Call-ID", "CSeq"} {
				if h != missing {
					msg += headers[h]
				}
			}
			msg += "Content-Length: 0\n\n"
			if _, err := c.WriteToUDPAddrPort(crlf(msg), local); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			first, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			if want := "SIP/2.0 400 Missing " + missing; first != want {
				t.Errorf("got %q, want %q", first, want)
			}
		})
	}
	t.Run("ACK without To is dropped and counted", func(t *testing.T) {
		msg := "ACK sip:bob@10.0.0.11:5060 SIP/2.0\n" +
			"Via: SIP/2.0/UDP " + me.String() + ";rport;branch=z9hG4bKmissack\n" +
			"Max-Forwards: 70\n" + headers["From"] + headers["Call-ID"] + "CSeq: 1 ACK\nContent-Length: 0\n\n"
		if _, err := c.WriteToUDPAddrPort(crlf(msg), local); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for !counted(p.Stats().Snapshot().Drops, "bad_request") {
			if time.Now().After(deadline) {
				t.Fatalf("ACK drop not counted: %+v", p.Stats().Snapshot().Drops)
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := c.ReadFromUDPAddrPort(make([]byte, 4096)); err == nil {
			t.Errorf("the ACK was answered with %d bytes", n)
		}
	})
}

func counted(cs []Counter, label string) bool {
	for _, c := range cs {
		if c.Label == label && c.Count > 0 {
			return true
		}
	}
	return false
}

// TestResponseToResolvedSelf: a response whose next Via is a name that
// resolves to the listener itself ("localhost" on a loopback listener) is
// dropped as next_hop_loop, not sent back to the agent.
func TestResponseToResolvedSelf(t *testing.T) {
	p, local := startStatelessProxy(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "SIP/2.0 200 OK\n" +
		"Via: SIP/2.0/UDP " + local.String() + ";branch=z9hG4bK0c3e1f2a4b5d6e7f8\n" +
		"Via: SIP/2.0/UDP localhost:" + strconv.Itoa(int(local.Port())) + ";branch=z9hG4bKnashds8\n" +
		"To: <sip:bob@biloxi.example.com>;tag=a6c85cf\n" +
		"From: <sip:alice@atlanta.example.com>;tag=1\n" +
		"Call-ID: resolved-self-1\n" +
		"CSeq: 1 OPTIONS\n" +
		"Content-Length: 0\n\n"
	if _, err := c.WriteToUDPAddrPort(crlf(msg), local); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := p.Stats().Snapshot()
		if counted(s.Drops, DropNextHopLoop) {
			if s.Forwarded != 0 || counted(s.Drops, DropViaNotOurs) {
				t.Errorf("also forwarded (%d) or came back (%+v)", s.Forwarded, s.Drops)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not dropped as %s: forwarded %d, drops %+v", DropNextHopLoop, s.Forwarded, s.Drops)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
