package sipproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

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
	// Resolver resolves next hops that are names; nil means net.DefaultResolver.
	Resolver *net.Resolver
	Logger   *slog.Logger
}

// Proxy is the slow path: sipgo's transport layer owns the UDP sockets, the
// Forwarder applies the stateless contract to raw datagrams in the
// transport's read filter, and whatever the contract hands off (failover
// INVITEs, replies to the agent's own requests) continues into sipgo's
// parser and transaction layer.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	fwd      *Forwarder
	tpl      *sip.TransportLayer
	txl      *sip.TransactionLayer
	stateful *statefulTable
	stats    *Stats
	bufs     sync.Pool
	resolver *net.Resolver
	replyLog logLimiter

	mu    sync.Mutex
	conns map[netip.AddrPort]*net.UDPConn // listener sockets by local address
	ctx   context.Context                 // the Run context, for handlers sipgo calls
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
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	p := &Proxy{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "sipproxy"),
		stateful: newStatefulTable(),
		stats:    newStats(),
		resolver: cfg.Resolver,
		conns:    make(map[netip.AddrPort]*net.UDPConn),
		ready:    make(chan struct{}),
	}
	p.bufs.New = func() any { b := make([]byte, 0, 65536); return &b }
	fwd, err := NewForwarder(cfg.Dispatcher, cfg.Listeners, Options{OwnsTransaction: p.stateful.owns})
	if err != nil {
		return nil, fmt.Errorf("sipproxy: %w", err)
	}
	p.fwd = fwd
	tuneSipgo(cfg.Logger)
	p.tpl = newTransportLayer(cfg.Logger, p.readFilter)
	p.txl = newTransactionLayer(cfg.Logger, p.tpl, p.unhandledResponse)
	p.txl.OnRequest(p.handleRequest)
	return p, nil
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() *Stats { return p.stats }

// Ready is closed once every listener socket is bound.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Run binds every listener and serves until ctx ends.
func (p *Proxy) Run(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()

	var lc net.ListenConfig
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
		// A burst of calls must not overflow the socket before the reader
		// catches up; the kernel caps this at net.core.rmem_max.
		_ = conn.SetReadBuffer(8 << 20)
		_ = conn.SetWriteBuffer(8 << 20)
		p.mu.Lock()
		p.conns[l.Addr] = conn
		p.mu.Unlock()
		p.log.Info("listening", "listener", l.Name, "addr", l.Addr.String(), "advertise", l.Advertise,
			"set", l.Rule.SetID, "algorithm", int(l.Rule.Alg), "failover", l.Rule.Failover)
	}
	close(p.ready)

	errc := make(chan error, len(p.cfg.Listeners))
	p.mu.Lock()
	for _, conn := range p.conns {
		go func(c *net.UDPConn) { errc <- p.tpl.ServeUDP(c) }(conn)
	}
	p.mu.Unlock()

	<-ctx.Done()
	p.closeConns()
	p.txl.Close()
	_ = p.tpl.Close()
	for range p.cfg.Listeners {
		if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Warn("listener stopped", "error", err)
		}
	}
	return nil
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

func (p *Proxy) runContext() context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx == nil {
		return context.Background()
	}
	return p.ctx
}

// readFilter is the stateless path. sipgo calls it on the socket's reader
// goroutine with the raw datagram; returning nil consumes the datagram,
// returning the bytes lets sipgo parse them for the transaction layer. It
// never returns an error: sipgo stops reading the socket on one.
func (p *Proxy) readFilter(props sip.TransportReadProps, data []byte) ([]byte, error) {
	local, src, ok := udpAddrs(props)
	if !ok {
		p.stats.drop("bad_address")
		return nil, nil
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	res := p.fwd.Process(data, src, local, (*bp)[:0])
	switch res.Action {
	case ActionForward:
		p.send(local, res.Out, res.Dst)
		return nil, nil
	case ActionReply:
		p.reply(data, src, local, res.Code, res.Reason)
		return nil, nil
	case ActionDrop:
		p.stats.drop(res.Reason)
		if p.log.Enabled(context.Background(), slog.LevelDebug) {
			p.log.Debug("dropped", "src", src.String(), "reason", res.Reason)
		}
		return nil, nil
	}
	// ActionHandoff.
	p.stats.handoff(res.Reason)
	switch res.Reason {
	case HandoffStatefulInvite, HandoffStatefulCancel, HandoffStatefulAck, HandoffStatefulBranch, HandoffLocalReply:
		// These continue into sipgo's parser, which is stricter than the
		// contract's scanner. What it would refuse is answered (or counted)
		// here instead of vanishing inside sipgo.
		if _, err := sip.ParseMessage(data); err != nil {
			if isRequest(data) {
				p.reply(data, src, local, 400, "Bad Request")
			} else {
				p.stats.drop("malformed_for_transaction")
			}
			p.log.Debug("hand-off refused by sipgo's parser", "src", src.String(), "error", err)
			return nil, nil
		}
	}
	switch res.Reason {
	case HandoffStatefulInvite:
		if err := p.stateful.register(data, local, res.Selection); err != nil {
			p.log.Warn("failover INVITE not registered", "src", src.String(), "error", err)
			p.reply(data, src, local, 500, "Server Internal Error")
			return nil, nil
		}
	case HandoffNextHopName:
		p.forwardToName(local, res)
		return nil, nil
	case HandoffNextHopTransport:
		// TCP and TLS next hops come with the tcpops work; until then a
		// request gets a clear answer and a response is dropped.
		if isRequest(data) {
			p.reply(data, src, local, 503, "Transport Not Supported")
		} else {
			p.stats.drop("next_hop_transport")
		}
		return nil, nil
	}
	return data, nil
}

// send writes a forwarded message from the listener's socket.
func (p *Proxy) send(local netip.AddrPort, b []byte, dst netip.AddrPort) {
	c := p.conn(local)
	if c == nil {
		p.stats.drop("no_socket")
		return
	}
	if _, err := c.WriteToUDPAddrPort(b, dst); err != nil {
		p.stats.drop("send_error")
		p.log.Warn("send failed", "dst", dst.String(), "error", err)
		return
	}
	p.stats.forwarded()
}

// reply answers a request statelessly with code. A request without a top
// Via that parses, and an ACK, has no reply: it is dropped and counted.
func (p *Proxy) reply(data []byte, src, local netip.AddrPort, code int, reason string) {
	var m sipmsg.Msg
	if err := sipmsg.Parse(data, &m); err != nil {
		p.stats.drop("malformed_unanswerable")
		return
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	out, ok := appendReply((*bp)[:0], data, &m, src, code, reason)
	if !ok {
		p.stats.drop("malformed_unanswerable")
		p.log.Debug("cannot answer request", "src", src.String(), "code", code)
		return
	}
	c := p.conn(local)
	if c == nil {
		return
	}
	if _, err := c.WriteToUDPAddrPort(out, replyAddr(src, m.TopVia.HasRport, m.TopVia.PortNum)); err != nil {
		p.log.Warn("reply failed", "code", code, "dst", src.String(), "error", err)
		return
	}
	p.stats.replied(code)
	if code >= 500 || code == 404 {
		// 5xx and the configured no-destination 404 mean the pool is in
		// trouble: worth a line, but one a second at most per code, or a
		// dead pool under load would flood the log.
		if n, ok := p.replyLog.allow(code, time.Now()); ok {
			p.log.Warn("replied", "code", code, "reason", reason, "src", src.String(),
				"call_id", string(m.CallID.Bytes(data)), "suppressed_since_last", n)
		}
	}
}

// forwardToName resolves a next hop that is a host name (RFC 3263 A/AAAA;
// SRV is not used for an explicit port) off the reader goroutine, then sends.
func (p *Proxy) forwardToName(local netip.AddrPort, res Result) {
	host, port := res.DstHost, res.DstPort
	if host == "" {
		p.stats.drop("next_hop_unknown")
		return
	}
	if port == 0 {
		port = 5060
	}
	out := append([]byte(nil), res.Out...)
	ctx := p.runContext()
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		network := "ip4"
		if local.Addr().Is6() {
			network = "ip6"
		}
		addrs, err := p.resolver.LookupNetIP(ctx, network, host)
		if err != nil || len(addrs) == 0 {
			p.stats.drop("next_hop_unresolved")
			p.log.Warn("next hop does not resolve", "host", host, "error", err)
			return
		}
		dst := netip.AddrPortFrom(addrs[0].Unmap(), uint16(port))
		if reason := p.fwd.resolvedNextHop(local, dst, isRequest(out)); reason != "" {
			p.stats.drop(reason)
			return
		}
		p.send(local, out, dst)
	}()
}

// logLimiter lets one log line per key through each second and counts the
// ones it held back.
type logLimiter struct {
	mu   sync.Mutex
	last map[int]time.Time
	held map[int]int
}

// allow reports whether a line for key may be logged at now, and how many
// were held back since the last one.
func (l *logLimiter) allow(key int, now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = make(map[int]time.Time), make(map[int]int)
	}
	if now.Sub(l.last[key]) < time.Second {
		l.held[key]++
		return 0, false
	}
	n := l.held[key]
	l.last[key], l.held[key] = now, 0
	return n, true
}

// isRequest tells a request from a response by the start line.
func isRequest(data []byte) bool {
	return !bytes.HasPrefix(data, []byte("SIP/"))
}

// replyDestination is replyAddr for a request sipgo parsed.
func replyDestination(req *sip.Request, src netip.AddrPort) netip.AddrPort {
	via := req.Via()
	if via == nil {
		return src
	}
	_, rport := via.Params.Get("rport")
	return replyAddr(src, rport, via.Port)
}

func callID(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// unhandledResponse receives handed-off responses no client transaction
// claims: late retransmissions after a transaction ended.
func (p *Proxy) unhandledResponse(res *sip.Response) {
	p.stats.drop("response_no_transaction")
	p.log.Debug("response matches no transaction", "status", res.StatusCode, "call_id", callID(res))
}

// handleRequest receives handed-off requests that opened a new server
// transaction: failover-mode INVITEs; and CANCEL or ACK whose transaction
// ended between the contract's check and sipgo's.
func (p *Proxy) handleRequest(req *sip.Request, tx *sip.ServerTx) {
	switch {
	case req.IsInvite():
		call, ok := p.stateful.lookup(req)
		if !ok {
			p.respond(tx, req, 500, "Server Internal Error")
			return
		}
		go p.runFailover(p.runContext(), call, req, tx)
	case req.IsAck():
		// An ACK for a transaction that already ended: nothing to do.
	case req.IsCancel():
		p.respond(tx, req, 481, "Call/Transaction Does Not Exist")
	default:
		p.respond(tx, req, 500, "Server Internal Error")
	}
}

func (p *Proxy) respond(tx *sip.ServerTx, req *sip.Request, code int, reason string) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if src, err := netip.ParseAddrPort(req.Source()); err == nil {
		res.SetDestination(replyDestination(req, src).String())
	}
	if err := tx.Respond(res); err != nil {
		p.log.Debug("respond failed", "code", code, "error", err)
		return
	}
	p.stats.replied(code)
}

func udpAddrs(props sip.TransportReadProps) (local, src netip.AddrPort, ok bool) {
	l, ok1 := props.LocalAddr.(*net.UDPAddr)
	r, ok2 := props.RemoteAddr.(*net.UDPAddr)
	if !ok1 || !ok2 {
		return local, src, false
	}
	local = l.AddrPort()
	src = r.AddrPort()
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	return local, src, true
}

// topViaKey returns the top Via's branch and sent-by of a raw message.
func topViaKey(data []byte) (branch, sentBy string, err error) {
	var m sipmsg.Msg
	if err := sipmsg.Parse(data, &m); err != nil {
		return "", "", err
	}
	b, s, ok := m.TopViaKey(data)
	if !ok {
		return "", "", errors.New("no top Via")
	}
	return string(b), string(s), nil
}
