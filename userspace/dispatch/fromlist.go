package dispatch

import (
	"net/netip"
	"strings"
)

// ds_is_from_list mode bits (§5).
const (
	MatchNoPort  = 1  // ignore the port
	MatchNoProto = 2  // ignore the protocol (the default mode is 2)
	MatchActive  = 4  // up destinations only
	MatchSocket  = 8  // the destination's socket must be the receiving one
	MatchBest    = 16 // best match by score: ip 1, port 2, proto 4, socket 8
)

// Match scores (mode 16).
const (
	scoreAddr  = 1
	scorePort  = 2
	scoreProto = 4
	scoreSock  = 8
	scoreAll   = scoreAddr | scorePort | scoreProto | scoreSock
)

// Match is a destination IsFromList matched.
type Match struct {
	SetID int
	Dest  Destination
	Score int // mode 16 only: how strictly it matched (15 = ip, port, proto, socket)
}

// IsFromList reports whether src (arriving over proto, e.g. "udp") is a
// destination of set group, or of any set when group is -1
// (ds_is_from_list). mode is a bitmask of Match* bits; Kamailio's default
// is MatchNoProto. The IP must always match, against the destination's
// (first) address; destinations with FlagNoDNSARes never match; a
// destination without an explicit port matches any port. Sets are walked in
// ascending ID order (Kamailio walks its AVL tree in post-order), the first
// match wins, or with MatchBest the highest score (15 wins at once).
func (s *Snapshot) IsFromList(group, mode int, src netip.AddrPort, proto string) (Match, bool) {
	return s.IsFromListSocket(group, mode, src, proto, "")
}

// IsFromListSocket is IsFromList with the receiving socket, for MatchSocket
// and MatchBest: socket is compared with the destination's socket attribute
// (ignoring case) or its sockname attribute; destinations with neither pass
// MatchSocket.
func (s *Snapshot) IsFromListSocket(group, mode int, src netip.AddrPort, proto, socket string) (Match, bool) {
	sets := s.sets
	if group != -1 {
		set := s.Set(group)
		if set == nil {
			return Match{}, false
		}
		sets = []*Set{set}
	}
	q := fromQuery{mode: mode, ip: src.Addr().Unmap(), port: int(src.Port()), proto: proto, socket: socket}
	var best Match
	found := false
	for _, set := range sets {
		for i := range set.Dests {
			score, ok := q.match(&set.Dests[i])
			if !ok {
				continue
			}
			m := Match{SetID: set.ID, Dest: set.Dests[i], Score: score}
			if mode&MatchBest == 0 {
				m.Score = 0
				return m, true
			}
			if score == scoreAll {
				return m, true
			}
			if !found || score > best.Score {
				best, found = m, true
			}
		}
	}
	return best, found
}

// fromQuery is one IsFromList question.
type fromQuery struct {
	mode   int
	ip     netip.Addr
	port   int
	proto  string
	socket string
}

// match tests one destination; the score counts only with MatchBest.
func (q fromQuery) match(d *Destination) (score int, ok bool) {
	if d.Flags&FlagNoDNSARes != 0 || !d.Addr.IsValid() || d.Addr.Addr() != q.ip {
		return 0, false
	}
	best := q.mode&MatchBest != 0
	portEq := d.Port != 0 && d.Port == q.port
	protoEq := strings.EqualFold(effectiveTransport(d), q.proto)
	hasSock := d.Attrs.Socket != "" || d.Attrs.SockName != ""
	sockEq := hasSock && q.socket != "" &&
		(strings.EqualFold(d.Attrs.Socket, q.socket) || d.Attrs.SockName == q.socket)
	switch {
	case !best && q.mode&MatchNoPort == 0 && d.Port != 0 && !portEq:
		return 0, false
	case !best && q.mode&MatchNoProto == 0 && !protoEq:
		return 0, false
	case q.mode&MatchActive != 0 && !d.Up():
		return 0, false
	case q.mode&MatchSocket != 0 && hasSock && !sockEq:
		return 0, false
	}
	score = scoreAddr
	if portEq {
		score |= scorePort
	}
	if protoEq {
		score |= scoreProto
	}
	if sockEq {
		score |= scoreSock
	}
	return score, true
}

// effectiveTransport is the transport messages to d use. A URI that leaves
// the transport open (Kamailio's PROTO_NONE, which matches no protocol
// there) is sent over UDP by sipedge, so it matches "udp".
func effectiveTransport(d *Destination) string {
	if d.Transport == "" {
		return "udp"
	}
	return d.Transport
}
