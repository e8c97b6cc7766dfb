package sipproxy

import (
	"fmt"
	"net/netip"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// Alg 7 hashes the text of Kamailio's hash_pvar template. sipedge expands
// the pseudo-variables stateless forwarding can see:
//
//	$ci Call-ID        $si source IP (IPv6 without brackets)   $sp source port
//	$fu From URI       $fU From URI user   $fd From URI host
//	$tu To URI         $tU To URI user     $td To URI host
//	$ru Request-URI    $rU R-URI user      $rd R-URI host
//
// written $xx or $(xx); everything else in the template is literal text.
// An unknown variable is a configuration error (NewForwarder fails).

// pvarVar is one pseudo-variable.
type pvarVar uint8

const (
	pvLiteral pvarVar = iota
	pvCallID
	pvFromURI
	pvFromUser
	pvFromHost
	pvToURI
	pvToUser
	pvToHost
	pvRURI
	pvRURIUser
	pvRURIHost
	pvSrcIP
	pvSrcPort
)

// pvarPart is a literal or a variable of a parsed template.
type pvarPart struct {
	v   pvarVar
	lit string
}

func pvarByName(name string) (pvarVar, bool) {
	switch name {
	case "ci":
		return pvCallID, true
	case "fu":
		return pvFromURI, true
	case "fU":
		return pvFromUser, true
	case "fd":
		return pvFromHost, true
	case "tu":
		return pvToURI, true
	case "tU":
		return pvToUser, true
	case "td":
		return pvToHost, true
	case "ru":
		return pvRURI, true
	case "rU":
		return pvRURIUser, true
	case "rd":
		return pvRURIHost, true
	case "si":
		return pvSrcIP, true
	case "sp":
		return pvSrcPort, true
	}
	return pvLiteral, false
}

// parsePVar parses a hash_pvar template.
func parsePVar(t string) ([]pvarPart, error) {
	if t == "" {
		return nil, fmt.Errorf("empty template")
	}
	var parts []pvarPart
	lit := 0
	flush := func(end int) {
		if end > lit {
			parts = append(parts, pvarPart{lit: t[lit:end]})
		}
	}
	for i := 0; i < len(t); {
		if t[i] != '$' {
			i++
			continue
		}
		var name string
		var next int
		switch {
		case i+1 < len(t) && t[i+1] == '(':
			end := -1
			for j := i + 2; j < len(t); j++ {
				if t[j] == ')' {
					end = j
					break
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed $(", t)
			}
			name, next = t[i+2:end], end+1
		case i+3 <= len(t):
			name, next = t[i+1:i+3], i+3
		default:
			return nil, fmt.Errorf("%q: lone $ at %d", t, i)
		}
		v, ok := pvarByName(name)
		if !ok {
			return nil, fmt.Errorf("%q: unknown variable $%s (known: $ci $fu $fU $fd $tu $tU $td $ru $rU $rd $si $sp)", t, name)
		}
		flush(i)
		parts = append(parts, pvarPart{v: v})
		i, lit = next, next
	}
	flush(len(t))
	return parts, nil
}

// expandPVar appends the expanded template to dst, up to its capacity (a
// longer expansion is cut there, so that it never allocates).
func expandPVar(dst []byte, parts []pvarPart, in []byte, m *sipmsg.Msg, src netip.AddrPort) ([]byte, reply) {
	var ruri sipmsg.URI
	ruriParsed := false
	put := func(b []byte) {
		if room := cap(dst) - len(dst); len(b) > room {
			b = b[:room]
		}
		dst = append(dst, b...)
	}
	for _, p := range parts {
		var u *sipmsg.URI
		switch p.v {
		case pvLiteral:
			if room := cap(dst) - len(dst); len(p.lit) > room {
				dst = append(dst, p.lit[:room]...)
			} else {
				dst = append(dst, p.lit...)
			}
			continue
		case pvCallID:
			put(m.CallID.Bytes(in))
			continue
		case pvSrcIP:
			var ip [64]byte
			put(src.Addr().AppendTo(ip[:0]))
			continue
		case pvSrcPort:
			var d [8]byte
			put(appendUint(d[:0], uint64(src.Port())))
			continue
		case pvFromURI, pvFromUser, pvFromHost:
			if m.From.Err != nil {
				return dst, replyBadFrom
			}
			u = &m.From.URI
		case pvToURI, pvToUser, pvToHost:
			u = &m.To.URI
		case pvRURI, pvRURIUser, pvRURIHost:
			if !ruriParsed {
				if sipmsg.ParseURI(in, m.RURI, &ruri) != nil {
					return dst, replyBadRURI
				}
				ruriParsed = true
			}
			u = &ruri
		}
		switch p.v {
		case pvFromURI, pvToURI, pvRURI:
			put(u.Whole.Bytes(in))
		case pvFromUser, pvToUser, pvRURIUser:
			if u.SIP {
				put(u.User.Bytes(in))
			} else {
				put(u.Opaque.Bytes(in))
			}
		default:
			put(u.Host.Bytes(in))
		}
	}
	return dst, replyNone
}
