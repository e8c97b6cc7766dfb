package sipproxy

import (
	"bytes"
	"errors"
	"net/netip"
	"runtime"
	"unsafe"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/pvar"
	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// reply is a reply the contract sends instead of forwarding a request
// (contract § Replies the proxy generates). The zero reply is none.
type reply uint8

const (
	replyNone reply = iota
	replyBadMethod
	replyBadRURI
	replyBadVersion
	replyVersionNotSupported
	replyMissingCallID
	replyMissingFrom
	replyMissingTo
	replyMissingCSeq
	replyDuplicateCallID
	replyDuplicateFrom
	replyDuplicateTo
	replyDuplicateCSeq
	replyBadCallID
	replyBadFrom
	replyBadTo
	replyBadCSeq
	replyBadMaxFwd
	replyDuplicateMaxFwd
	replyBadContentLength
	replyDuplicateContentLength
	replyBadRoute
	replyTooManyHops
	replyTooManyValues
	replyLoopDetected
	replyUnsupportedScheme
	replyNoSet
	replySelectError
	replyNoDestination // the rule's NoDestinationCode
	replyInternal
)

// info returns the status code, the reason phrase and the metric label.
func (r reply) info() (code int, phrase, label string) {
	switch r {
	case replyBadMethod:
		return 400, "Bad Method", "bad_request"
	case replyBadRURI:
		return 400, "Bad Request-URI", "bad_request"
	case replyBadVersion:
		return 400, "Bad SIP Version", "bad_request"
	case replyVersionNotSupported:
		return 505, "Version Not Supported", "version_not_supported"
	case replyMissingCallID:
		return 400, "Missing Call-ID", "bad_request"
	case replyMissingFrom:
		return 400, "Missing From", "bad_request"
	case replyMissingTo:
		return 400, "Missing To", "bad_request"
	case replyMissingCSeq:
		return 400, "Missing CSeq", "bad_request"
	case replyDuplicateCallID:
		return 400, "Duplicate Call-ID", "bad_request"
	case replyDuplicateFrom:
		return 400, "Duplicate From", "bad_request"
	case replyDuplicateTo:
		return 400, "Duplicate To", "bad_request"
	case replyDuplicateCSeq:
		return 400, "Duplicate CSeq", "bad_request"
	case replyBadCallID:
		return 400, "Bad Call-ID", "bad_request"
	case replyBadFrom:
		return 400, "Bad From", "bad_request"
	case replyBadTo:
		return 400, "Bad To", "bad_request"
	case replyBadCSeq:
		return 400, "Bad CSeq", "bad_request"
	case replyBadMaxFwd:
		return 400, "Bad Max-Forwards", "bad_request"
	case replyDuplicateMaxFwd:
		return 400, "Duplicate Max-Forwards", "bad_request"
	case replyBadContentLength:
		return 400, "Bad Content-Length", "bad_request"
	case replyDuplicateContentLength:
		return 400, "Duplicate Content-Length", "bad_request"
	case replyBadRoute:
		return 400, "Bad Route", "bad_request"
	case replyTooManyHops:
		return 483, "Too Many Hops", "max_forwards_zero"
	case replyTooManyValues:
		return 483, "Too Many Hops", "too_many_values"
	case replyLoopDetected:
		return 482, "Loop Detected", "loop_detected"
	case replyUnsupportedScheme:
		return 416, "Unsupported URI Scheme", "unsupported_uri_scheme"
	case replyNoSet:
		return 500, "Server Internal Error", "no_set"
	case replySelectError:
		return 500, "Server Internal Error", "select_error"
	case replyNoDestination:
		return 503, "Service Unavailable", "no_destination"
	case replyInternal:
		return 500, "Server Internal Error", DropInternal
	}
	return 0, "", ""
}

// result turns a reply into a Result: ACK is never answered (RFC 3261
// §17.2.3), it is dropped with the reply's label.
func (r reply) result(l *listener, ack bool) Result {
	code, phrase, label := r.info()
	if ack {
		return drop(label)
	}
	if r == replyNoDestination {
		code = l.Rule.NoDestinationCode
		phrase = reasonPhrase(code)
	}
	return Result{Action: ActionReply, Code: code, Reason: phrase}
}

// reasonPhrase is RFC 3261's phrase for the codes a no-destination reply
// may be configured with.
func reasonPhrase(code int) string {
	switch code {
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 410:
		return "Gone"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 500:
		return "Server Internal Error"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	switch code / 100 {
	case 3:
		return "Redirection"
	case 4:
		return "Request Failed"
	case 5:
		return "Server Error"
	}
	return "Global Failure"
}

// reqCtx is one request on its way through the contract.
type reqCtx struct {
	f   *Forwarder
	l   *listener
	in  []byte
	m   *sipmsg.Msg
	src netip.AddrPort
	ack bool
	ed  editor
}

// request applies contract § Requests.
func (f *Forwarder) request(l *listener, in []byte, src netip.AddrPort, m *sipmsg.Msg, out []byte) Result {
	// Without a top Via there is nowhere to send a reply.
	if m.NumVias == 0 || m.TopVia.Err != nil {
		return drop(DropMalformed)
	}
	rc := reqCtx{f: f, l: l, in: in, m: m, src: src}
	method := m.Method.Bytes(in)
	rc.ack = string(method) == "ACK"
	if r := validateRequest(in, m); r != replyNone {
		return r.result(l, rc.ack)
	}
	rc.ed.begin, rc.ed.end = int(m.Start.Start), len(in)
	if m.ContentLength >= 0 {
		rc.ed.end = m.Body + m.ContentLength
	}
	mfAbsent, r := maxForwards(&rc.ed, m)
	if r != replyNone {
		return r.result(l, rc.ack)
	}
	rc.ed.block = blockSpec{l: l, mf: mfAbsent}

	// A CANCEL, or the ACK of a non-2xx, of a transaction the stateful
	// layer owns goes there.
	if f.opt.OwnsTransaction != nil && (rc.ack || string(method) == "CANCEL") {
		branch, sentBy, _ := m.TopViaKey(in)
		if f.opt.OwnsTransaction(branch, sentBy, rc.ack) {
			if rc.ack {
				return handoff(HandoffStatefulAck)
			}
			return handoff(HandoffStatefulCancel)
		}
	}

	if m.NumRoutes > 0 && routeNamesUs(l, in, &m.TopRoute) {
		return rc.looseRoute(out)
	}
	return rc.dispatch(out)
}

// validateRequest applies the request checks of contract § Validation, in
// order.
func validateRequest(in []byte, m *sipmsg.Msg) reply {
	switch m.StartErr {
	case nil:
	case sipmsg.ErrMethod:
		return replyBadMethod
	case sipmsg.ErrRequestURI:
		return replyBadRURI
	default:
		return replyBadVersion
	}
	if !m.VersionOK {
		return replyVersionNotSupported
	}
	type need struct {
		kind               sipmsg.Kind
		missing, duplicate reply
	}
	for _, n := range [...]need{
		{sipmsg.KindCallID, replyMissingCallID, replyDuplicateCallID},
		{sipmsg.KindFrom, replyMissingFrom, replyDuplicateFrom},
		{sipmsg.KindTo, replyMissingTo, replyDuplicateTo},
		{sipmsg.KindCSeq, replyMissingCSeq, replyDuplicateCSeq},
	} {
		switch m.Count[n.kind] {
		case 0:
			return n.missing
		case 1:
		default:
			return n.duplicate
		}
	}
	switch {
	case m.CallIDErr != nil:
		return replyBadCallID
	case m.To.Err != nil:
		return replyBadTo
	case m.CSeq.Err != nil:
		return replyBadCSeq
	case m.Count[sipmsg.KindContentLength] > 1:
		return replyDuplicateContentLength
	case m.ContentLengthErr != nil, m.ContentLength > len(in)-m.Body:
		return replyBadContentLength
	case m.NumRoutes > 0 && (m.TopRoute.Err != nil || !m.TopRoute.Angle || !m.TopRoute.URI.SIP):
		return replyBadRoute
	}
	return replyNone
}

// dispatch applies contract § Requests rule 2: the listener's rule picks the
// next hop; the Request-URI stays. Route values the loose-routing step
// removed (they named us) are already in rc.ed.
func (rc *reqCtx) dispatch(out []byte) Result {
	l, m, in := rc.l, rc.m, rc.in
	rule := &l.Rule
	sel, r := rc.selectDest()
	if r != replyNone {
		return r.result(l, rc.ack)
	}
	if len(sel.Dests) == 0 {
		return replyNoDestination.result(l, rc.ack)
	}
	method := m.Method.Bytes(in)
	if rule.Failover && string(method) == "INVITE" && !m.To.HasTag {
		res := handoff(HandoffStatefulInvite)
		res.Selection = sel
		return res
	}
	dst := &sel.Dests[0]
	rc.ed.block.rr = rule.RecordRoute && !m.To.HasTag && dialogForming(method)
	res, ok := rc.finish(out)
	if !ok {
		return res
	}
	res.Selection = sel
	if !dst.Addr.IsValid() {
		res.Action, res.Reason = ActionHandoff, HandoffNextHopName
		res.DstHost, res.DstPort = dst.Host, dst.Port
		if res.DstPort == 0 {
			res.DstPort = 5060
		}
		return res
	}
	res.Dst = dst.Addr
	return res
}

// dialogForming reports whether a request without a To tag opens a dialog
// the proxy should Record-Route: INVITE, SUBSCRIBE, REFER.
func dialogForming(method []byte) bool {
	switch string(method) {
	case "INVITE", "SUBSCRIBE", "REFER":
		return true
	}
	return false
}

// finish adds the sender's Via edit and the insertion block (our Via, and
// Record-Route and Max-Forwards as set in rc.ed.block) and writes the
// output. The returned Result is ActionForward with Out set, or a drop when
// the edits could not be written.
func (rc *reqCtx) finish(out []byte) (Result, bool) {
	m, in := rc.m, rc.in
	// Our Via, and our Record-Route when the rule adds one, must leave a
	// message that every parser bounded as ours is (sipmsg.MaxVias,
	// MaxRecordRoutes) still takes; a request already at the bound has
	// passed that many proxies.
	if m.NumVias >= sipmsg.MaxVias || rc.ed.block.rr && m.NumRecordRoutes >= sipmsg.MaxRecordRoutes {
		return replyTooManyValues.result(rc.l, rc.ack), false
	}
	rc.ed.setSrc(rc.src)
	if !senderVia(&rc.ed, in, &m.TopVia) {
		return drop(DropInternal), false
	}
	rc.ed.block.token = requestToken(in, m)
	if !rc.ed.add(edit{off: int(m.Start.End), end: int(m.Start.End), kind: insBlock}) {
		return drop(DropInternal), false
	}
	o, ok := rc.ed.write(in, out)
	if !ok {
		return drop(DropInternal), false
	}
	return Result{Action: ActionForward, Out: o}, true
}

// pvarBufLen bounds the expanded hash_pvar text; a longer expansion is cut
// (the hash then covers its first pvarBufLen bytes).
const pvarBufLen = 1024

// selectDest asks the dispatcher for the rule's destination.
func (rc *reqCtx) selectDest() (dispatch.Selection, reply) {
	if rc.l.Rule.Alg == dispatch.AlgPVar {
		return rc.selectPVar()
	}
	key, r := rc.hashKey(nil)
	if r != replyNone {
		return dispatch.Selection{}, r
	}
	return rc.selectKey(&key)
}

// selectPVar is selectDest for alg 7, whose key is the template expanded
// into a buffer: only this algorithm pays for zeroing it, and it must stay
// alive until Select has hashed the key that aliases it.
func (rc *reqCtx) selectPVar() (dispatch.Selection, reply) {
	var buf [pvarBufLen]byte
	key, r := rc.hashKey(buf[:0])
	if r != replyNone {
		return dispatch.Selection{}, r
	}
	sel, r := rc.selectKey(&key)
	runtime.KeepAlive(&buf)
	return sel, r
}

// selectKey runs the rule's selection and maps its errors to replies.
func (rc *reqCtx) selectKey(key *dispatch.Key) (dispatch.Selection, reply) {
	rule := &rc.l.Rule
	sel, err := rc.f.d.Select(rule.SetID, rule.Alg, *key, rule.Limit)
	switch {
	case err == nil:
		return sel, replyNone
	case errors.Is(err, dispatch.ErrNoSet):
		return sel, replyNoSet
	case errors.Is(err, dispatch.ErrNoDestination), errors.Is(err, dispatch.ErrEmptyHashKey):
		return sel, replyNoDestination
	}
	return sel, replySelectError
}

// hashKey builds the dispatcher key the rule's algorithm reads. The strings
// alias the message (and buf) without copying: Select hashes them and does
// not keep them (call load, alg 10, keeps the Call-ID's 64-bit hash).
func (rc *reqCtx) hashKey(buf []byte) (dispatch.Key, reply) {
	var key dispatch.Key
	m, in := rc.m, rc.in
	switch rc.l.Rule.Alg {
	case dispatch.AlgCallID:
		key.CallID = alias(m.CallID.Bytes(in))
	case dispatch.AlgFromURI:
		if m.From.Err != nil {
			return key, replyBadFrom
		}
		key.From = uriKey(in, &m.From.URI)
	case dispatch.AlgToURI:
		key.To = uriKey(in, &m.To.URI)
	case dispatch.AlgRURI:
		var u sipmsg.URI
		if sipmsg.ParseURI(in, m.RURI, &u) != nil {
			return key, replyBadRURI
		}
		key.RURI = uriKey(in, &u)
	case dispatch.AlgAuthUser:
		key.AuthUser = alias(authUser(in, m))
	case dispatch.AlgPVar:
		v, err := rc.l.pvar.Append(buf, &pvar.Input{Buf: in, Msg: m, Src: rc.src})
		switch {
		case errors.Is(err, pvar.ErrBadFrom):
			return key, replyBadFrom
		case errors.Is(err, pvar.ErrBadTo):
			return key, replyBadTo
		case errors.Is(err, pvar.ErrBadRURI):
			return key, replyBadRURI
		case err != nil:
			return key, replyInternal
		}
		key.PVar = alias(v)
	case dispatch.AlgCallLoad:
		cid := m.CallID.Bytes(in)
		key.CallID = alias(cid)
		key.CallIDHash = wordhash.CallID(trimWSP(cid))
		key.Invite = string(m.Method.Bytes(in)) == "INVITE"
	}
	return key, replyNone
}

// alias returns b as a string without copying. The string must not outlive
// b's contents: only for keys handed to Select.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// uriKey is the dispatcher's view of a URI: user, host as written, explicit
// port, sips. A URI that is not SIP (tel:) gives its number as the user.
func uriKey(in []byte, u *sipmsg.URI) dispatch.URIKey {
	if !u.SIP {
		// Kamailio hashes a tel: URI as its number with an empty host;
		// other schemes do not parse there and have no key.
		op := u.Opaque.Bytes(in)
		if i := bytes.IndexByte(op, ';'); i >= 0 {
			op = op[:i]
		}
		return dispatch.URIKey{User: alias(op), Tel: bytes.EqualFold(u.Scheme.Bytes(in), []byte("tel"))}
	}
	return dispatch.URIKey{
		User:     alias(u.User.Bytes(in)),
		Host:     alias(u.Host.Bytes(in)),
		Port:     u.PortNum,
		PortText: alias(u.Port.Bytes(in)),
		Secure:   u.Secure,
	}
}

// authUser is alg 5's key: the user part of the digest username of the
// first Proxy-Authorization that has one, else of the first Authorization.
func authUser(in []byte, m *sipmsg.Msg) []byte {
	for _, kind := range [...]sipmsg.Kind{sipmsg.KindProxyAuthorization, sipmsg.KindAuthorization} {
		if !m.Has(kind) {
			continue
		}
		for i := 0; i < m.NumHeaders; i++ {
			h := &m.Headers[i]
			if h.Kind != kind {
				continue
			}
			if s, ok := sipmsg.DigestUsername(in, h.Value); ok {
				u := s.Bytes(in)
				if at := bytes.IndexByte(u, '@'); at >= 0 {
					u = u[:at]
				}
				return u
			}
		}
	}
	return nil
}
