package sipproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Config is what a Proxy needs; the agent builds it from the YAML config.
type Config struct {
	Listeners  []Listener
	Dispatcher *dispatch.Dispatcher
	// FailoverTimeout is how long a failover-mode INVITE branch may stay
	// without any response before the next destination is tried.
	FailoverTimeout time.Duration
	// MaxTransactions caps the failover-mode transactions in progress; an
	// INVITE beyond it is answered 503 with Retry-After. 0 means
	// DefaultMaxTransactions.
	MaxTransactions int
	// MaxTransactionBytes caps the bytes of SIP messages the failover
	// transactions hold together (the caller's INVITE, the INVITE sent to
	// each destination, the responses kept for retransmission); an INVITE
	// that would go beyond it is answered 503 with Retry-After. 0 means
	// DefaultMaxTransactionBytes.
	MaxTransactionBytes int64
	// ReceiveBuffer is the SO_RCVBUF asked for each listener socket, in
	// bytes; 0 means DefaultReceiveBuffer.
	ReceiveBuffer int
	// Resolver resolves next hops that are names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	Logger   *slog.Logger
	// LocalReply, when set, is offered each response to the agent's own
	// requests (probes): one whose only Via is a listener's sent-by
	// (HandoffLocalReply), with its source address. It returns true when
	// it took the datagram. It runs on the listener's reader goroutine, so
	// it must be quick and must not block; data is valid only during the
	// call. A response it does not take is dropped and counted as
	// response_no_transaction.
	LocalReply func(data []byte, src netip.AddrPort) bool
	// Observe, when set, is given every dialog-relevant message the slow
	// path forwards, and the final replies its failover transactions make
	// themselves (observe.go says which, and why). It runs on the reader
	// goroutine, at times under the failover table's lock: it must be
	// quick and must not block or call back into the Proxy.
	Observe func(Observed)
	// Admit, when set, is asked about every INVITE without a To tag before
	// it is forwarded (dispatched, loose-routed), or right before it starts
	// a failover transaction, once nothing else can refuse it (Failover
	// set; not a retransmission, which the transaction absorbs), with the
	// same fields Observe gets (Local unset). An admitted INVITE is always
	// sent, or its transaction started, unless its send fails. A
	// Refusal with a Code has the INVITE answered with it and not
	// forwarded, so never observed. It runs on the reader goroutine, at
	// times under the failover table's lock: it must be quick and must
	// not block or call back into the Proxy.
	Admit func(Observed) Refusal

	// timers are the RFC 3261 timers; zero means rfcTimers. Tests set them.
	timers timerValues
	// writeTo, when set, replaces the listener sockets' sendto. Tests set it.
	writeTo func(local netip.AddrPort, b []byte, dst netip.AddrPort) error
}

// Proxy is the slow path: it reads the listener sockets, applies the
// stateless contract (the Forwarder) to each datagram and runs what the
// contract hands off: failover-mode transactions, next hops to resolve.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	fwd      *Forwarder
	txs      *txTable
	stats    *Stats
	resolver *net.Resolver
	logs     logLimiter
	tm       timerValues

	names chan nameJob // next hops to resolve (forwardToName)

	mu    sync.Mutex
	conns map[netip.AddrPort]*net.UDPConn // listener sockets by local address
	ready chan struct{}
}

// New builds a Proxy. It starts nothing; Run binds and serves.
func New(cfg Config) (*Proxy, error) {
	if cfg.Dispatcher == nil {
		return nil, errors.New("sipproxy: no dispatcher")
	}
	if len(cfg.Listeners) == 0 {
		return nil, errors.New("sipproxy: no listeners")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FailoverTimeout <= 0 {
		cfg.FailoverTimeout = 5 * time.Second
	}
	if cfg.MaxTransactions < 0 {
		return nil, fmt.Errorf("sipproxy: max transactions %d < 0", cfg.MaxTransactions)
	}
	if cfg.MaxTransactionBytes < 0 {
		return nil, fmt.Errorf("sipproxy: max transaction bytes %d < 0", cfg.MaxTransactionBytes)
	}
	if cfg.ReceiveBuffer < 0 {
		return nil, fmt.Errorf("sipproxy: receive buffer %d < 0", cfg.ReceiveBuffer)
	}
	if cfg.ReceiveBuffer == 0 {
		cfg.ReceiveBuffer = DefaultReceiveBuffer
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.timers == (timerValues{}) {
		cfg.timers = rfcTimers
	}
	p := &Proxy{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "sipproxy"),
		txs:      newTxTable(cfg.MaxTransactions, cfg.MaxTransactionBytes),
		stats:    newStats(),
		resolver: cfg.Resolver,
		tm:       cfg.timers,
		conns:    make(map[netip.AddrPort]*net.UDPConn),
		ready:    make(chan struct{}),
		names:    make(chan nameJob, nameQueueSize),
	}
	p.stats.pending = p.txs.usage
	fwd, err := NewForwarder(cfg.Dispatcher, cfg.Listeners, Options{OwnsTransaction: p.txs.owns})
	if err != nil {
		return nil, fmt.Errorf("sipproxy: %w", err)
	}
	p.fwd = fwd
	return p, nil
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() *Stats { return p.stats }

// Ready is closed once every listener socket is bound.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Run binds every listener and serves until ctx ends. It returns nil
// then; it returns early, with an error naming the listener, when a
// listener's socket fails for good, having stopped everything else it
// started.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lc net.ListenConfig
	warnedClamp := false
	ovfs := make(map[netip.AddrPort]*overflowCounter, len(p.cfg.Listeners))
	for _, l := range p.cfg.Listeners {
		network := "udp4"
		if l.Addr.Addr().Is6() {
			network = "udp6"
		}
		pc, err := lc.ListenPacket(ctx, network, l.Addr.String())
		if err != nil {
			p.closeConns()
			return fmt.Errorf("listen on %s (listener %s): %w", l.Addr, l.Name, err)
		}
		conn := pc.(*net.UDPConn)
		info, err := setupSocket(conn, p.cfg.ReceiveBuffer)
		if err != nil {
			_ = conn.Close()
			p.closeConns()
			return fmt.Errorf("listener %s (%s): %w", l.Name, l.Addr, err)
		}
		_ = conn.SetWriteBuffer(8 << 20)
		if info.clamped(p.cfg.ReceiveBuffer) && !warnedClamp {
			warnedClamp = true
			p.log.Warn("UDP receive buffer smaller than configured: net.core.rmem_max caps it (run as root, or raise it: sysctl -w net.core.rmem_max=N)",
				"listener", l.Name, "want", p.cfg.ReceiveBuffer, "granted", info.granted/2)
		}
		p.mu.Lock()
		p.conns[l.Addr] = conn
		p.mu.Unlock()
		ovfs[l.Addr] = p.stats.addSocket(l.Name, info)
		p.log.Info("listening", "listener", l.Name, "addr", l.Addr.String(), "advertise", l.Advertise,
			"set", l.Rule.SetID, "algorithm", int(l.Rule.Alg), "failover", l.Rule.Failover,
			"receive_buffer", info.granted/2, "rcvbuf_forced", info.forced)
	}
	close(p.ready)

	var wg sync.WaitGroup
	errc := make(chan error, len(p.cfg.Listeners))
	p.mu.Lock()
	for _, l := range p.cfg.Listeners {
		conn, ovf := p.conns[l.Addr], ovfs[l.Addr]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.readLoop(ctx, conn, l.Addr, ovf, make([]byte, readBufferSize)); err != nil {
				errc <- fmt.Errorf("listener %s (%s): %w", l.Name, l.Addr, err)
			}
		}()
	}
	p.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.runTimers(ctx)
	}()
	for range nameWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.resolveNames(ctx)
		}()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// The timers and the other read loops stop with ctx, a read loop
	// blocked in its socket when the socket closes.
	cancel()
	p.closeConns()
	wg.Wait()
	return err
}

func (p *Proxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

func (p *Proxy) conn(local netip.AddrPort) *net.UDPConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[local]
}

// timerBatch is how many due transactions fire under one hold of the lock.
const timerBatch = 256

// runTimers serves the failover transactions' timers (timers.go) until ctx
// ends.
func (p *Proxy) runTimers(ctx context.Context) {
	t := p.txs
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t.mu.Lock()
		now := time.Now()
		// Due transactions fire in batches; the lock is let go between
		// them, so that a burst of expiries does not hold up the reader
		// goroutines.
		for n := 0; n < timerBatch && len(t.heap) > 0 && !t.heap[0].due.After(now); n++ {
			tx := t.heap[0]
			p.fire(tx, now)
			p.reschedule(tx)
		}
		wait := time.Hour
		if len(t.heap) > 0 {
			wait = max(t.heap[0].due.Sub(now), 0)
		}
		t.mu.Unlock()
		if wait == 0 {
			if ctx.Err() != nil {
				return
			}
			continue // the next batch
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-t.wake:
		}
	}
}

// handle applies the contract to one datagram read from the listener
// local, out being scratch space for the forwarded bytes and m for the
// parsed message. m is the reader's, reused for every datagram: on handle's
// stack it would move to the heap, once per datagram, since Observe (a
// function value) is given it.
func (p *Proxy) handle(data []byte, src, local netip.AddrPort, out []byte, m *sipmsg.Msg) {
	res := p.fwd.process(data, src, local, out, m)
	switch res.Action {
	case ActionForward:
		if p.refused(data, m, src, local, &res) {
			return
		}
		if p.send(local, res.Out, res.Dst) {
			p.observeForwarded(data, m, src, local, &res)
		} else if createsDialog(data, m) {
			// Not sent, so no reply will release the load alg 10 charged.
			p.refusedCallLoad(local, m.CallID.Bytes(data))
		}
		return
	case ActionReply:
		p.reply(data, src, local, res.Code, res.Reason)
		return
	case ActionDrop:
		p.stats.drop(res.Reason)
		// Keep-alives are traffic, not trouble: counted, never logged.
		if !isKeepalive(res.Reason) {
			p.logs.log(p.log, slog.LevelDebug, "dropped: "+res.Reason, "src", src.String())
		}
		return
	}
	// ActionHandoff.
	p.stats.handoff(res.Reason)
	switch res.Reason {
	case HandoffStatefulInvite:
		p.statefulInvite(data, src, local, res.Selection)
	case HandoffStatefulAck:
		p.statefulAck(data)
	case HandoffStatefulCancel:
		p.statefulCancel(data, src, local)
	case HandoffStatefulBranch:
		p.statefulResponse(data, src)
	case HandoffLocalReply:
		// A reply to the agent's own request (a probe, SendFrom).
		if p.cfg.LocalReply != nil && p.cfg.LocalReply(data, src) {
			return
		}
		p.stats.drop("response_no_transaction")
	case HandoffNextHopName:
		// Reported as it is queued: the resolver sends it later, with the
		// contract's edits, and it is dropped (and counted) only when the
		// name does not resolve.
		if p.refused(data, m, src, local, &res) {
			return
		}
		p.observeForwarded(data, m, src, local, &res)
		p.forwardToName(local, res)
	case HandoffNextHopTransport:
		// TCP and TLS next hops come with the tcpops work; until then a
		// request gets a clear answer and a response is dropped.
		if isRequest(data) {
			p.reply(data, src, local, 503, "Transport Not Supported")
		} else {
			p.stats.drop("next_hop_transport")
		}
	default:
		p.stats.drop(DropInternal)
	}
}

// send writes a forwarded message from the listener's socket and counts
// it; it reports whether it went.
func (p *Proxy) send(local netip.AddrPort, b []byte, dst netip.AddrPort) bool {
	if p.write(local, b, dst) {
		p.stats.forwarded()
		return true
	}
	return false
}

// write writes b from the listener's socket to dst.
func (p *Proxy) write(local netip.AddrPort, b []byte, dst netip.AddrPort) bool {
	if p.cfg.writeTo != nil {
		if err := p.cfg.writeTo(local, b, dst); err != nil {
			p.stats.drop("send_error")
			return false
		}
		return true
	}
	c := p.conn(local)
	if c == nil {
		p.stats.drop("no_socket")
		return false
	}
	if _, err := c.WriteToUDPAddrPort(b, dst); err != nil {
		p.stats.drop("send_error")
		p.logs.warn(p.log, "send failed", "dst", dst.String(), "error", err)
		return false
	}
	return true
}

// SendFrom sends b, a request of the agent's own (a probe), from the
// socket of the listener bound at local to dst; the zero local means the
// first listener. It is not counted as forwarded, and an error (no such
// listener, not bound yet or closed already, sendto failed) is returned,
// not counted: the caller counts its own. Responses to it whose only Via
// carries SentBy(local) reach Config.LocalReply. Safe for concurrent use.
func (p *Proxy) SendFrom(local, dst netip.AddrPort, b []byte) error {
	if !local.IsValid() {
		local = p.cfg.Listeners[0].Addr
	}
	if p.cfg.writeTo != nil {
		return p.cfg.writeTo(local, b, dst)
	}
	c := p.conn(local)
	if c == nil {
		return fmt.Errorf("send from %s: no listener socket bound there", local)
	}
	if _, err := c.WriteToUDPAddrPort(b, dst); err != nil {
		return fmt.Errorf("send from %s to %s: %w", local, dst, err)
	}
	return nil
}

// SentBy returns the Via sent-by the slow path writes for the listener
// bound at local (the zero local: the first listener): its advertised
// host:port, else its address. A response whose top Via carries exactly
// this text is recognised as the proxy's own. ok is false when no listener
// is at local.
func (p *Proxy) SentBy(local netip.AddrPort) (sentBy string, ok bool) {
	if !local.IsValid() {
		local = p.cfg.Listeners[0].Addr
	}
	l := p.fwd.listener(local)
	if l == nil {
		return "", false
	}
	return string(l.adv), true
}

// sendReply writes a reply the agent made; it is not counted as forwarded.
func (p *Proxy) sendReply(local netip.AddrPort, b []byte, dst netip.AddrPort) bool {
	return p.write(local, b, dst)
}

// reply answers a request statelessly with code. A request without a top
// Via that parses, and an ACK, has no reply: it is dropped and counted.
func (p *Proxy) reply(data []byte, src, local netip.AddrPort, code int, reason string) {
	var m sipmsg.Msg
	if err := sipmsg.Parse(data, &m); err != nil {
		p.stats.drop("malformed_unanswerable")
		return
	}
	out, ok := appendReply(nil, data, &m, src, code, reason)
	if !ok {
		p.stats.drop("malformed_unanswerable")
		p.logs.log(p.log, slog.LevelDebug, "cannot answer request", "src", src.String(), "code", code)
		return
	}
	if !p.sendReply(local, out, replyAddr(src, m.TopVia.HasRport, m.TopVia.PortNum)) {
		return
	}
	p.stats.replied(code)
	if code >= 500 || code == 404 {
		// 5xx and the configured no-destination 404 mean the pool is in
		// trouble: worth a line, rate-limited like every per-message line.
		p.logs.warn(p.log, "replied "+strconv.Itoa(code), "reason", reason, "src", src.String(),
			"call_id", string(m.CallID.Bytes(data)))
	}
}

// Next hops that are host names (RFC 3263 A/AAAA; SRV is not used for an
// explicit port) are resolved off the reader goroutines by nameWorkers
// workers, from a queue of nameQueueSize messages: a DNS server that hangs
// holds at most that many messages and goroutines, whatever comes in. A
// message the queue cannot take is dropped and counted.
const (
	nameWorkers   = 4
	nameQueueSize = 256
)

// DropNextHopQueueFull counts messages whose next hop is a name, dropped
// because the resolver queue was full.
const DropNextHopQueueFull = "next_hop_queue_full"

// nameJob is one message waiting for its next hop's address.
type nameJob struct {
	local netip.AddrPort
	host  string
	port  int
	out   []byte
}

// forwardToName queues a message whose next hop is a name.
func (p *Proxy) forwardToName(local netip.AddrPort, res Result) {
	if res.DstHost == "" {
		p.stats.drop("next_hop_unknown")
		return
	}
	j := nameJob{local: local, host: res.DstHost, port: res.DstPort, out: append([]byte(nil), res.Out...)}
	if j.port == 0 {
		j.port = 5060
	}
	select {
	case p.names <- j:
	default:
		p.stats.drop(DropNextHopQueueFull)
		p.logs.warn(p.log, "next hop resolver queue full, message dropped", "host", j.host, "queue", nameQueueSize)
	}
}

// resolveNames is one resolver worker; it ends with ctx.
func (p *Proxy) resolveNames(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-p.names:
			p.resolveAndSend(ctx, j)
		}
	}
}

func (p *Proxy) resolveAndSend(ctx context.Context, j nameJob) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	network := "ip4"
	if j.local.Addr().Is6() {
		network = "ip6"
	}
	addrs, err := p.resolver.LookupNetIP(ctx, network, j.host)
	if err != nil || len(addrs) == 0 {
		p.stats.drop("next_hop_unresolved")
		p.logs.warn(p.log, "next hop does not resolve", "host", j.host, "error", err)
		return
	}
	dst := netip.AddrPortFrom(addrs[0].Unmap(), uint16(j.port))
	if reason := p.fwd.resolvedNextHop(j.local, dst, isRequest(j.out)); reason != "" {
		p.stats.drop(reason)
		return
	}
	p.send(j.local, j.out, dst)
}

// isRequest tells a request from a response by the start line.
func isRequest(data []byte) bool {
	return !bytes.HasPrefix(data, []byte("SIP/"))
}

// isKeepalive tells the drop reasons of keep-alive datagrams.
func isKeepalive(reason string) bool {
	return reason == DropKeepalive || reason == DropEmpty || reason == DropNUL
}
