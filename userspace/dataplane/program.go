package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
)

// ProgramHash is the SHA-256 of the XDP object built into this binary
// (bpf/ compiled by make generate), in hex: two agents with the same hash
// run the same program.
func ProgramHash() string {
	sum := sha256.Sum256(_XdpsipBytes)
	return hex.EncodeToString(sum[:])
}
