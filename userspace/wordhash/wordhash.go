// Package wordhash is the 64-bit word hash sipedge uses to name SIP
// transactions and calls on both of its paths: the branch token of our Via
// (docs/forwarding-contract.md, "The branch token") and the Call-ID key of
// the fast path's events (docs/fastpath.md, "Events"). The XDP program
// computes the same function in bpf/hash.h; the shared vectors in
// userspace/sipproxy/testdata/branch-vectors.json hold the two together.
//
// It reads 8 bytes per step, not one, because the XDP program hashes a
// 60-byte Call-ID in 8 steps that way.
package wordhash

import "encoding/binary"

// Seeds of the two hashes of the family.
const (
	SeedBranch = 0x7369706564676521 // "sipedge!": the branch token
	SeedCallID = 0x63616c6c2d696421 // "call-id!": the event Call-ID key
)

const (
	mul    = 0x9e3779b97f4a7c15
	finMul = 0xbf58476d1ce4e5b9
)

func mix(h, w uint64) uint64 {
	h = (h ^ w) * mul
	return h ^ h>>32
}

// Absorb mixes p into h in 8-byte little-endian words, then one tail word
// holding the 0..7 remaining bytes and, in its top byte, their count, so
// that field boundaries cannot be confused.
func Absorb(h uint64, p []byte) uint64 {
	for len(p) >= 8 {
		h = mix(h, binary.LittleEndian.Uint64(p))
		p = p[8:]
	}
	t := uint64(len(p)) << 56
	for i, c := range p {
		t |= uint64(c) << (8 * i)
	}
	return mix(h, t)
}

// Finish is the final avalanche step.
func Finish(h uint64) uint64 {
	h ^= h >> 29
	h *= finMul
	return h ^ h>>32
}

// BranchToken is the branch token of a top Via with the magic cookie: its
// branch value, its sent-by and the Call-ID, each as written; the caller
// trims SP/HTAB around the Call-ID.
func BranchToken(branch, sentBy, callID []byte) uint64 {
	h := Absorb(SeedBranch, branch)
	h = Absorb(h, sentBy)
	return Finish(Absorb(h, callID))
}

// CallID is the event key of a Call-ID; the caller trims SP/HTAB around it.
func CallID(callID []byte) uint64 { return Finish(Absorb(SeedCallID, callID)) }
