package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sipedge/sipedge/userspace/pvar"
)

// checkHashPVar checks a hash_pvar template (package pvar): alg 7 hashes
// it to pick the destination, so it must hold a variable (else every call
// hashes alike) and must not read $du (the destination it picks).
func checkHashPVar(s string) error {
	t, err := pvar.Parse(s)
	switch {
	case err != nil:
		return err
	case !t.HasVariable():
		return fmt.Errorf("%q has no variable: every call would hash alike", s)
	case t.UsesDestination():
		return fmt.Errorf("%q: $du is the destination algorithm 7 picks: it cannot be hashed to pick it", s)
	}
	return nil
}

// ReplyCodes are the probe replies counted as success besides 2xx
// (ds_ping_reply_codes).
type ReplyCodes struct {
	Codes   []int // exact status codes, 100-699
	Classes []int // status classes, 1-6: class 4 is 400-499
}

// Accepts reports whether a reply with status code counts as success.
func (r ReplyCodes) Accepts(code int) bool {
	if code >= 200 && code <= 299 {
		return true
	}
	for _, c := range r.Codes {
		if c == code {
			return true
		}
	}
	for _, c := range r.Classes {
		if c == code/100 {
			return true
		}
	}
	return false
}

// ParsePingReplyCodes parses ds_ping_reply_codes: entries class=N or
// code=NNN separated by ';', e.g. "class=2;code=403;code=488". Empty is
// no extra codes.
func ParsePingReplyCodes(s string) (ReplyCodes, error) {
	var r ReplyCodes
	entries := strings.Split(s, ";")
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			if i == len(entries)-1 {
				continue // "" or one trailing ';'
			}
			return ReplyCodes{}, fmt.Errorf("%q: empty entry (want class=N or code=NNN, separated by ';')", s)
		}
		name, val, ok := strings.Cut(e, "=")
		name, val = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(val)
		n, err := strconv.Atoi(val)
		if !ok || err != nil || strings.Trim(val, "0123456789") != "" {
			return ReplyCodes{}, fmt.Errorf("%q: %q is not class=N or code=NNN", s, e)
		}
		switch name {
		case "class":
			if n < 1 || n > 6 {
				return ReplyCodes{}, fmt.Errorf("%q: class %d is not 1-6", s, n)
			}
			r.Classes = append(r.Classes, n)
		case "code":
			if n < 100 || n > 699 {
				return ReplyCodes{}, fmt.Errorf("%q: code %d is not a SIP status code (100-699)", s, n)
			}
			r.Codes = append(r.Codes, n)
		default:
			return ReplyCodes{}, fmt.Errorf("%q: %q is not class=N or code=NNN", s, e)
		}
	}
	return r, nil
}
