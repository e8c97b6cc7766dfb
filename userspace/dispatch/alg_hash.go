package dispatch

import (
	"fmt"
	"strings"
)

// callIDHash is alg 0: the hash of the trimmed Call-ID.
func callIDHash(callID string) (uint32, error) {
	cid := trimKey(callID)
	if cid == "" {
		return 0, fmt.Errorf("call-id: %w", ErrEmptyHashKey)
	}
	return Hash(cid, ""), nil
}

// uriHash is algs 1, 2 and 3: the hash of the URI's keys.
func uriHash(what string, u URIKey, userOnly bool) (uint32, error) {
	if u.Host == "" && !u.Tel {
		return 0, fmt.Errorf("%s uri has no host: %w", what, ErrEmptyHashKey)
	}
	k1, k2 := URIHashKeys(u, userOnly)
	return Hash(k1, k2), nil
}

// authUserHash is alg 5: the hash of the digest username's user part. ok is
// false when there is no username (the caller falls back to round robin).
func authUserHash(username string) (h uint32, ok bool) {
	user, _, _ := strings.Cut(username, "@")
	if user == "" {
		return 0, false
	}
	return Hash(user, ""), true
}

// pvarHash is alg 7: the hash of the trimmed hash_pvar value.
func pvarHash(v string) (uint32, error) {
	v = trimKey(v)
	if v == "" {
		return 0, fmt.Errorf("hash_pvar value: %w", ErrEmptyHashKey)
	}
	return Hash(v, ""), nil
}
