package sipproxy

import "github.com/sipedge/sipedge/userspace/sipmsg"

// maxFwdDefault is the value inserted when a request has no Max-Forwards
// (RFC 3261 §8.1.1.6).
const maxFwdDefault = "Max-Forwards: 70\r\n"

// maxForwards checks Max-Forwards (contract § Max-Forwards) and records its
// edit: nothing to write when it is absent (the insertion block adds it),
// else the decremented value in place. It returns the reply to send instead
// of forwarding, if any.
func maxForwards(ed *editor, m *sipmsg.Msg) (absent bool, r reply) {
	switch {
	case m.Count[sipmsg.KindMaxForwards] == 0:
		return true, replyNone
	case m.Count[sipmsg.KindMaxForwards] > 1:
		return false, replyDuplicateMaxFwd
	case m.MaxForwardsErr != nil || m.MaxForwardsNum > 255:
		return false, replyBadMaxFwd
	case m.MaxForwardsNum == 0:
		return false, replyTooManyHops
	}
	ed.maxFwdNew = m.MaxForwardsNum - 1
	if !ed.add(edit{off: int(m.MaxForwards.Start), end: int(m.MaxForwards.End), kind: insMaxFwd}) {
		return false, replyInternal
	}
	return false, replyNone
}

// appendPadded appends v right-aligned in width bytes, left-padded with
// spaces (Kamailio's decrement_maxfwd keeps the length). v never needs more
// digits than width: it is one less than a number written in width digits.
func appendPadded(out []byte, v, width int) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
		if v == 0 || i == 0 {
			break
		}
	}
	for pad := width - (len(d) - i); pad > 0; pad-- {
		out = append(out, ' ')
	}
	return append(out, d[i:]...)
}
