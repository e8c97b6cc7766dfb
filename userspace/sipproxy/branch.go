package sipproxy

import (
	"bytes"

	"github.com/sipedge/sipedge/userspace/sipmsg"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// The branch token (contract § The branch token): the word hash (package
// wordhash) of the top Via's branch, its sent-by and the Call-ID, so that retransmissions,
// the CANCEL and the non-2xx ACK of an INVITE get its branch, and a new
// client transaction gets a new one. The XDP program computes the same
// function; testdata/branch-vectors.json holds the shared vectors.
// trimWSP removes leading and trailing SP and HTAB. (bytes.Trim with a
// cutset costs more than the plain loops on this path.)
func trimWSP(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// BranchToken is the token of a top Via with the magic cookie: branch is
// the branch parameter's value, sentBy the sent-by as written, callID the
// Call-ID value (leading and trailing SP/HTAB are ignored).
func BranchToken(branch, sentBy, callID []byte) uint64 {
	return wordhash.BranchToken(branch, sentBy, trimWSP(callID))
}

// BranchTokenNoCookie is the token of a top Via without the magic cookie
// (RFC 2543 client): the branch counts as empty and the CSeq number's
// digits are absorbed last, so the INVITE, its CANCEL and its non-2xx ACK
// share the token and the next request does not.
func BranchTokenNoCookie(sentBy, callID, cseqNum []byte) uint64 {
	h := wordhash.Absorb(wordhash.SeedBranch, nil)
	h = wordhash.Absorb(h, sentBy)
	h = wordhash.Absorb(h, trimWSP(callID))
	h = wordhash.Absorb(h, cseqNum)
	return wordhash.Finish(h)
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
