package sipproxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// localReply is one call of Config.LocalReply.
type localReply struct {
	data string
	src  netip.AddrPort
}

// TestLocalReplyAndSendFrom: a request the agent sends with SendFrom,
// carrying SentBy's text (the advertised address) as its only Via, leaves
// from the listener's socket; the backend's answer reaches LocalReply with
// the backend's address, and is not counted as a drop when taken. A reply
// LocalReply refuses is dropped as response_no_transaction; a reply whose
// Via is not ours never reaches it.
func TestLocalReplyAndSendFrom(t *testing.T) {
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	local := probe.LocalAddr().(*net.UDPAddr).AddrPort()
	probe.Close()
	got := make(chan localReply, 8)
	p, err := New(Config{
		Listeners:  []Listener{{Name: "edge", Addr: local, Advertise: "edge.example.com", Rule: Rule{SetID: 1}}},
		Dispatcher: fixtureDispatcher(t),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		LocalReply: func(data []byte, src netip.AddrPort) bool {
			took := !strings.Contains(string(data), "refuse")
			got <- localReply{string(data), src}
			return took
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sentBy, ok := p.SentBy(local)
	if want := "edge.example.com:" + itoa(int(local.Port())); !ok || sentBy != want {
		t.Fatalf("SentBy(%v) = %q, %t; want %q", local, sentBy, ok, want)
	}
	if def, _ := p.SentBy(netip.AddrPort{}); def != sentBy {
		t.Errorf("SentBy(zero) = %q, want the first listener's %q", def, sentBy)
	}
	if _, ok := p.SentBy(netip.MustParseAddrPort("127.0.0.1:1")); ok {
		t.Error("SentBy of an address with no listener reported ok")
	}
	backend, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	bAddr := backend.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := p.SendFrom(local, bAddr, []byte("x")); err == nil {
		t.Error("SendFrom before Run: no error")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy Run: %v", err)
		}
	}()
	<-p.Ready()

	req := func(branch string) string {
		return "OPTIONS sip:" + bAddr.String() + " SIP/2.0\n" +
			"Via: SIP/2.0/UDP " + sentBy + ";rport;branch=" + branch + "\n" +
			"To: <sip:" + bAddr.String() + ">\nFrom: <sip:dispatcher@localhost>;tag=abcdef-1234\n" +
			"CSeq: 10 OPTIONS\nCall-ID: local-reply-" + branch + "\nMax-Forwards: 70\nContent-Length: 0\n\n"
	}
	answer := func(request []byte, reason string, via string) {
		t.Helper()
		head, _, _ := strings.Cut(string(request), "\r\nTo:")
		_, rest, _ := strings.Cut(head, "\r\n")
		if via != "" {
			rest = via
		}
		resp := "SIP/2.0 200 " + reason + "\r\n" + rest + "\r\nTo: <sip:x>;tag=1\r\nFrom: <sip:dispatcher@localhost>;tag=abcdef-1234\r\n" +
			"CSeq: 10 OPTIONS\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"
		if _, err := backend.WriteToUDPAddrPort([]byte(resp), local); err != nil {
			t.Fatal(err)
		}
	}
	read := func() []byte {
		t.Helper()
		buf := make([]byte, 4096)
		_ = backend.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := backend.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("backend got nothing: %v", err)
		}
		if from != local {
			t.Errorf("request came from %v, want the listener %v", from, local)
		}
		return buf[:n]
	}

	if err := p.SendFrom(netip.AddrPort{}, bAddr, crlf(req("z9hG4bKpr1"))); err != nil {
		t.Fatal(err)
	}
	answer(read(), "OK", "")
	select {
	case r := <-got:
		if r.src != bAddr || !strings.HasPrefix(r.data, "SIP/2.0 200 OK\r\n") {
			t.Errorf("LocalReply got %q from %v", r.data, r.src)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("LocalReply not called")
	}

	if err := p.SendFrom(local, bAddr, crlf(req("z9hG4bKpr2"))); err != nil {
		t.Fatal(err)
	}
	answer(read(), "refuse", "")
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("LocalReply not called for the refused reply")
	}
	deadline := time.Now().Add(2 * time.Second)
	for !counted(p.Stats().Snapshot().Drops, "response_no_transaction") {
		if time.Now().After(deadline) {
			t.Fatalf("refused reply not counted: %+v", p.Stats().Snapshot().Drops)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range p.Stats().Snapshot().Drops {
		if c.Label == "response_no_transaction" && c.Count != 1 {
			t.Errorf("response_no_transaction = %d, want 1 (the taken reply counted too)", c.Count)
		}
	}

	// Not our Via: the forwarder drops it before any handoff.
	answer(nil, "OK", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKother")
	deadline = time.Now().Add(2 * time.Second)
	for !counted(p.Stats().Snapshot().Drops, DropViaNotOurs) {
		if time.Now().After(deadline) {
			t.Fatalf("foreign reply not dropped: %+v", p.Stats().Snapshot().Drops)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-got:
		t.Errorf("LocalReply got a reply whose Via is not ours: %q", r.data)
	default:
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
