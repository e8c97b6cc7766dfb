package sipproxy

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/pvar"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Rule is what a listener does with requests it dispatches.
type Rule struct {
	SetID int
	Alg   dispatch.Alg
	// Limit caps the failover list (0 = no cap).
	Limit int
	// RecordRoute inserts Record-Route on dialog-forming requests.
	RecordRoute bool
	// Failover hands initial INVITEs to the stateful layer (t_relay +
	// ds_next_dst) instead of forwarding them statelessly.
	Failover bool
	// HashPVar is the alg 7 template (package pvar; $du excluded: it is
	// what alg 7 picks).
	HashPVar string
	// NoDestinationCode is the reply when no destination is up (503 when 0).
	NoDestinationCode int
}

// Listener is a local UDP socket and its rule.
type Listener struct {
	Name string
	Addr netip.AddrPort
	// Advertise is the host:port written in our Via and Record-Route
	// instead of Addr; "" uses Addr. A host without a port gets Addr's port.
	Advertise string
	Rule      Rule
}

// Action says what to do with a processed message.
type Action uint8

// The actions.
const (
	ActionForward Action = iota + 1 // send Result.Out to Result.Dst
	ActionReply                     // answer with Result.Code and Result.Reason
	ActionDrop                      // discard; Result.Reason says why
	ActionHandoff                   // give the original datagram to the stateful layer
)

// String returns the action's lower-case name.
func (a Action) String() string {
	switch a {
	case ActionForward:
		return "forward"
	case ActionReply:
		return "reply"
	case ActionDrop:
		return "drop"
	case ActionHandoff:
		return "handoff"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Handoff reasons (Result.Reason with ActionHandoff).
const (
	HandoffStatefulInvite   = "stateful_invite"    // failover rule, initial INVITE
	HandoffStatefulCancel   = "stateful_cancel"    // CANCEL of a stateful INVITE
	HandoffStatefulAck      = "stateful_ack"       // ACK of a stateful INVITE's non-2xx
	HandoffStatefulBranch   = "stateful_branch"    // response to a stateful branch
	HandoffLocalReply       = "local_reply"        // response to the agent's own request
	HandoffNextHopName      = "next_hop_name"      // next hop needs DNS; Out is ready, DstHost/DstPort say where
	HandoffNextHopTransport = "next_hop_transport" // next hop is not UDP (sips:, transport=tcp, a TCP Via)
)

// Drop reasons (Result.Reason with ActionDrop). An ACK that would have
// been answered is dropped with the reply's label (replyLabel).
const (
	DropMalformed       = "malformed"
	DropKeepalive       = "keepalive" // CRLF keep-alives (RFC 5626 §4.4.1)
	DropEmpty           = "empty"     // a zero-length datagram
	DropNUL             = "nul"       // NUL bytes only (some NATs' keep-alives)
	DropViaNotOurs      = "via_not_ours"
	DropUnknownListener = "unknown_listener"
	DropInternal        = "internal_error"
	// A response's next hop (next Via, received) that is unspecified,
	// broadcast or multicast; or that reflects to this host: a listener of
	// the agent, or loopback when the response did not arrive on loopback.
	DropNextHopUnroutable = "next_hop_unroutable"
	DropNextHopLoop       = "next_hop_loop"
)

// Result is what Process decided.
type Result struct {
	Action Action
	// Out is out with the forwarded message appended (ActionForward, and
	// ActionHandoff for next_hop_name and next_hop_transport, where only the
	// destination is missing).
	Out []byte
	// Dst is the next hop (ActionForward).
	Dst netip.AddrPort
	// DstHost and DstPort name a next hop that needs DNS (HandoffNextHopName).
	DstHost string
	DstPort int
	// Code is the reply status (ActionReply).
	Code int
	// Reason is the reply phrase (ActionReply), or a short snake_case label
	// usable as a metric label (ActionDrop, ActionHandoff).
	Reason string
	// Selection is the dispatcher's answer when one was made: Dests[0] the
	// pick, the rest the failover order.
	Selection dispatch.Selection
}

// Options are optional hooks.
type Options struct {
	// OwnsTransaction reports whether a stateful (failover-mode) server
	// transaction exists for this top Via branch and sent-by; ACK and
	// CANCEL matching one are handed off instead of forwarded. It must not
	// keep the slices.
	OwnsTransaction func(branch, sentBy []byte, ack bool) bool
}

// Forwarder applies the stateless forwarding contract. It is safe for
// concurrent use; it keeps no per-message state.
type Forwarder struct {
	d         *dispatch.Dispatcher
	listeners []listener
	opt       Options
}

// listener is a Listener with everything the contract writes precomputed.
type listener struct {
	Listener
	adv     []byte // ADV: advertised host:port, else IP:PORT; IPv6 bracketed
	advHost []byte
	advPort int
	ipText  []byte // the listener's IP as a URI host (IPv6 bracketed)
	port    int
	// viaPrefix is "Via: SIP/2.0/UDP <ADV>;branch=z9hG4bK", plus the parity
	// pad "0" when len(ADV) is odd; rrLine the whole Record-Route line.
	viaPrefix []byte
	rrLine    []byte
	pvar      pvar.Template
}

// NewForwarder checks the listeners and precomputes what each one writes.
func NewForwarder(d *dispatch.Dispatcher, listeners []Listener, opt Options) (*Forwarder, error) {
	if d == nil {
		return nil, errors.New("new forwarder: nil dispatcher")
	}
	f := &Forwarder{d: d, opt: opt, listeners: make([]listener, 0, len(listeners))}
	for i, l := range listeners {
		pl, err := prepareListener(l)
		if err != nil {
			return nil, fmt.Errorf("listener %d (%s): %w", i, l.Name, err)
		}
		for _, o := range f.listeners {
			if o.Addr == pl.Addr {
				return nil, fmt.Errorf("listener %d (%s): address %s used twice", i, l.Name, pl.Addr)
			}
		}
		f.listeners = append(f.listeners, pl)
	}
	return f, nil
}

func prepareListener(l Listener) (listener, error) {
	if !l.Addr.IsValid() || l.Addr.Port() == 0 {
		return listener{}, fmt.Errorf("address %q: need IP:port", l.Addr)
	}
	l.Addr = netip.AddrPortFrom(l.Addr.Addr().Unmap().WithZone(""), l.Addr.Port())
	if l.Rule.NoDestinationCode == 0 {
		l.Rule.NoDestinationCode = 503
	}
	if c := l.Rule.NoDestinationCode; c < 300 || c > 699 {
		return listener{}, fmt.Errorf("no_destination_code %d: not a final non-2xx status", c)
	}
	adv := advText(l)
	host, port := splitHostPort(adv)
	if port == 0 || !validHost(host) {
		return listener{}, fmt.Errorf("advertise %q: need host[:port]", l.Advertise)
	}
	pl := listener{
		Listener: l,
		adv:      []byte(adv),
		advHost:  []byte(host),
		advPort:  port,
		ipText:   appendURIHost(nil, l.Addr.Addr()),
		port:     int(l.Addr.Port()),
	}
	pl.viaPrefix = append([]byte("Via: SIP/2.0/UDP "+adv+";branch="), branchCookie...)
	if len(adv)%2 == 1 {
		pl.viaPrefix = append(pl.viaPrefix, '0')
	}
	pl.rrLine = []byte("Record-Route: <sip:" + adv + ";lr>\r\n")
	if l.Rule.Alg == dispatch.AlgPVar {
		t, err := pvar.Parse(l.Rule.HashPVar)
		switch {
		case err != nil:
			return listener{}, fmt.Errorf("hash_pvar: %w", err)
		case !t.HasVariable():
			return listener{}, fmt.Errorf("hash_pvar %q has no variable: every call would hash alike", l.Rule.HashPVar)
		case t.UsesDestination():
			return listener{}, fmt.Errorf("hash_pvar %q: $du is the destination alg 7 picks: it cannot be hashed to pick it", l.Rule.HashPVar)
		}
		pl.pvar = t
	}
	return pl, nil
}

// Process applies the contract to the datagram in, received from src on
// the listener whose address is local, appending any forwarded bytes to
// out. It never panics and allocates nothing on the forwarding paths beyond
// what appending to out and the dispatcher's Select need.
func (f *Forwarder) Process(in []byte, src, local netip.AddrPort, out []byte) Result {
	var m sipmsg.Msg
	return f.process(in, src, local, out, &m)
}

// process is Process parsing into m, which the caller may read afterwards
// when m.NumHeaders > 0 (the message was framed).
func (f *Forwarder) process(in []byte, src, local netip.AddrPort, out []byte, m *sipmsg.Msg) Result {
	l := f.listener(local)
	if l == nil {
		return drop(DropUnknownListener)
	}
	switch {
	case len(in) == 0:
		return drop(DropEmpty)
	case in[0] == 0 && len(bytes.Trim(in, "\x00")) == 0:
		return drop(DropNUL)
	}
	if err := sipmsg.Parse(in, m); err != nil {
		if err == sipmsg.ErrKeepalive {
			return drop(DropKeepalive)
		}
		return drop(DropMalformed)
	}
	src = netip.AddrPortFrom(src.Addr().Unmap().WithZone(""), src.Port())
	if m.IsRequest {
		return f.request(l, in, src, m, out)
	}
	return f.response(l, in, m, out)
}

func (f *Forwarder) listener(local netip.AddrPort) *listener {
	if local.Addr().Is4In6() {
		local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	}
	for i := range f.listeners {
		if f.listeners[i].Addr == local {
			return &f.listeners[i]
		}
	}
	return nil
}

func drop(reason string) Result    { return Result{Action: ActionDrop, Reason: reason} }
func handoff(reason string) Result { return Result{Action: ActionHandoff, Reason: reason} }

// The message is edited as a short list of byte ranges of the input to
// delete, each with an insertion written at its start; the output is the
// input copied around them. Nothing is re-serialised.

// insKind is what an edit writes at its offset.
type insKind uint8

const (
	insNone     insKind = iota // delete only
	insBlock                   // our Via, Record-Route, Max-Forwards: 70
	insRport                   // "=<src port>;received=<src ip>"
	insReceived                // ";received=<src ip>"
	insMaxFwd                  // the decremented Max-Forwards, right-aligned
	insCopy                    // in[from] (a URI moved into the Request-URI)
	insRoute                   // "Route: <in[from]>\r\n"
)

type edit struct {
	off, end int // delete in[off:end); off == end for a pure insertion
	kind     insKind
	from     sipmsg.Span
}

// maxEdits bounds the edits of one message: the insertion block, two in
// the sender's Via, Max-Forwards, up to three Route lines, the strict-route
// Request-URI and Route line.
const maxEdits = 12

// editor collects edits and writes the output.
type editor struct {
	e [maxEdits]edit
	n int
	// What the insertions need.
	block     blockSpec
	srcIP     [64]byte // src IP text, unbracketed: srcIP[:srcIPLen]
	srcIPLen  int
	srcPort   uint16
	maxFwdNew int
	// begin and end bound the input that is copied: begin skips CRLFs
	// before the start line; end is len(in), or the end of the body when
	// Content-Length says it is shorter.
	begin, end int
}

type blockSpec struct {
	l      *listener
	token  uint64
	rr, mf bool
}

// setSrc records the source address the Via insertions write.
func (ed *editor) setSrc(src netip.AddrPort) {
	ed.srcIPLen = len(src.Addr().AppendTo(ed.srcIP[:0]))
	ed.srcPort = src.Port()
}

func (ed *editor) add(e edit) bool {
	if ed.n == maxEdits {
		return false
	}
	ed.e[ed.n] = e
	ed.n++
	return true
}

// write appends the edited input to out. ok is false when the edits
// overlap (a bug, never an input problem); the output is then unusable.
func (ed *editor) write(in, out []byte) ([]byte, bool) {
	// Insertion sort by (off, end): at most maxEdits entries.
	for i := 1; i < ed.n; i++ {
		for j := i; j > 0 && less(ed.e[j], ed.e[j-1]); j-- {
			ed.e[j], ed.e[j-1] = ed.e[j-1], ed.e[j]
		}
	}
	pos := ed.begin
	for i := 0; i < ed.n; i++ {
		e := &ed.e[i]
		if e.off < pos || e.end < e.off || e.end > ed.end {
			return out, false
		}
		out = append(out, in[pos:e.off]...)
		out = ed.insert(out, in, e)
		pos = e.end
	}
	if pos > ed.end {
		return out, false
	}
	return append(out, in[pos:ed.end]...), true
}

func less(a, b edit) bool {
	if a.off != b.off {
		return a.off < b.off
	}
	return a.end < b.end
}

func (ed *editor) insert(out, in []byte, e *edit) []byte {
	switch e.kind {
	case insBlock:
		return appendBlock(out, ed.block)
	case insRport:
		out = append(out, '=')
		out = appendUint(out, uint64(ed.srcPort))
		out = append(out, ";received="...)
		return append(out, ed.srcIP[:ed.srcIPLen]...)
	case insReceived:
		out = append(out, ";received="...)
		return append(out, ed.srcIP[:ed.srcIPLen]...)
	case insMaxFwd:
		return appendPadded(out, ed.maxFwdNew, e.end-e.off)
	case insCopy:
		return append(out, e.from.Bytes(in)...)
	case insRoute:
		out = append(out, "Route: <"...)
		out = append(out, e.from.Bytes(in)...)
		return append(out, ">\r\n"...)
	}
	return out
}

// appendUint appends v in decimal.
func appendUint(out []byte, v uint64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(out, d[i:]...)
}

// removeFirst deletes the first k values of vals (Via or Route values, in
// message order): a header line all of whose values go is deleted whole;
// on the line where the kept values start, the removed values go with
// their commas and the blanks up to the first kept value.
func removeFirst(ed *editor, m *sipmsg.Msg, vals []sipmsg.Value, k int) bool {
	for i := 0; i < k && i < len(vals); {
		h := vals[i].Header
		j := i
		for j < len(vals) && vals[j].Header == h {
			j++
		}
		// vals[i:j] are the values of line h still present; [i, min(j,k)) go.
		if j <= k {
			line := m.Headers[h].Line
			if !ed.add(edit{off: int(line.Start), end: int(line.End)}) {
				return false
			}
		} else {
			if !ed.add(edit{off: int(vals[i].Span.Start), end: int(vals[k].Span.Start)}) {
				return false
			}
		}
		i = j
	}
	return true
}
