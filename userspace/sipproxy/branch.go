package sipproxy

import (
	"bytes"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// The branch token (contract § The branch token): a 64-bit word hash of the
// top Via's branch, its sent-by and the Call-ID, so that retransmissions,
// the CANCEL and the non-2xx ACK of an INVITE get its branch, and a new
// client transaction gets a new one. The XDP program computes the same
// function; testdata/branch-vectors.json holds the shared vectors.
const (
	tokenSeed   = 0x7369706564676521 // "sipedge!"
	tokenMul    = 0x9e3779b97f4a7c15
	tokenFinMul = 0xbf58476d1ce4e5b9
)

func tokenMix(h, w uint64) uint64 {
	h = (h ^ w) * tokenMul
	return h ^ h>>32
}

// tokenAbsorb mixes p in 8-byte little-endian words, then one tail word
// holding the 0..7 remaining bytes and, in its top byte, their count.
func tokenAbsorb(h uint64, p []byte) uint64 {
	for len(p) >= 8 {
		w := uint64(p[0]) | uint64(p[1])<<8 | uint64(p[2])<<16 | uint64(p[3])<<24 |
			uint64(p[4])<<32 | uint64(p[5])<<40 | uint64(p[6])<<48 | uint64(p[7])<<56
		h = tokenMix(h, w)
		p = p[8:]
	}
	t := uint64(len(p)) << 56
	for i, c := range p {
		t |= uint64(c) << (8 * i)
	}
	return tokenMix(h, t)
}

func tokenFinish(h uint64) uint64 {
	h ^= h >> 29
	h *= tokenFinMul
	return h ^ h>>32
}

// trimWSP removes leading and trailing SP and HTAB.
func trimWSP(b []byte) []byte {
	return bytes.Trim(b, " \t")
}

// BranchToken is the token of a top Via with the magic cookie: branch is
// the branch parameter's value, sentBy the sent-by as written, callID the
// Call-ID value (leading and trailing SP/HTAB are ignored).
func BranchToken(branch, sentBy, callID []byte) uint64 {
	h := tokenAbsorb(tokenSeed, branch)
	h = tokenAbsorb(h, sentBy)
	h = tokenAbsorb(h, trimWSP(callID))
	return tokenFinish(h)
}

// BranchTokenNoCookie is the token of a top Via without the magic cookie
// (RFC 2543 client): the branch counts as empty and the CSeq number's
// digits are absorbed last, so the INVITE, its CANCEL and its non-2xx ACK
// share the token and the next request does not.
func BranchTokenNoCookie(sentBy, callID, cseqNum []byte) uint64 {
	h := tokenAbsorb(tokenSeed, nil)
	h = tokenAbsorb(h, sentBy)
	h = tokenAbsorb(h, trimWSP(callID))
	h = tokenAbsorb(h, cseqNum)
	return tokenFinish(h)
}

// hasCookie reports whether a Via has a branch starting with the cookie.
func hasCookie(in []byte, v *sipmsg.Via) bool {
	return v.HasBranch && bytes.HasPrefix(v.Branch.Bytes(in), []byte(branchCookie))
}

// requestToken is the token for the request's top Via.
func requestToken(in []byte, m *sipmsg.Msg) uint64 {
	v := &m.TopVia
	if hasCookie(in, v) {
		return BranchToken(v.Branch.Bytes(in), v.SentBy.Bytes(in), m.CallID.Bytes(in))
	}
	return BranchTokenNoCookie(v.SentBy.Bytes(in), m.CallID.Bytes(in), m.CSeq.Num.Bytes(in))
}
