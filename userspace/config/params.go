package config

import (
	"fmt"
	"strconv"
	"strings"
)

// HashPVars are the Kamailio pseudo-variables a hash_pvar template may use,
// without the '$'.
var HashPVars = []string{"ci", "fu", "fU", "fd", "tu", "tU", "td", "ru", "rU", "rd", "si", "sp"}

// PVPart is one piece of a hash_pvar template: literal Text, or the
// pseudo-variable PV (a name from HashPVars, without '$'). One is empty.
type PVPart struct {
	Text string
	PV   string
}

// ParseHashPVar splits a hash_pvar template such as "$fU@$ci" into parts.
// A variable is written $name or $(name); the template must hold at least
// one, else every call would hash alike.
func ParseHashPVar(s string) ([]PVPart, error) {
	var parts []PVPart
	text := strings.Builder{}
	flush := func() {
		if text.Len() > 0 {
			parts = append(parts, PVPart{Text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(s); {
		if s[i] != '$' {
			text.WriteByte(s[i])
			i++
			continue
		}
		start := i
		i++
		paren := i < len(s) && s[i] == '('
		if paren {
			i++
		}
		j := i
		for j < len(s) && (isAlnum(s[j]) || s[j] == '_') {
			j++
		}
		name := s[i:j]
		if name == "" {
			return nil, fmt.Errorf("%q: '$' at offset %d is not followed by a variable name", s, start)
		}
		if !isHashPVar(name) {
			return nil, fmt.Errorf("%q: unknown variable $%s (allowed: $%s)", s, name, strings.Join(HashPVars, " $"))
		}
		if paren {
			if j >= len(s) || s[j] != ')' {
				return nil, fmt.Errorf("%q: $(%s must close with ')' (transformations are not supported)", s, name)
			}
			j++
		} else if j < len(s) && strings.IndexByte("([{", s[j]) >= 0 {
			pair := map[byte]string{'(': "(...)", '[': "[...]", '{': "{...}"}[s[j]]
			return nil, fmt.Errorf("%q: $%s takes no %s: indexes and transformations are not supported", s, name, pair)
		}
		flush()
		parts = append(parts, PVPart{PV: name})
		i = j
	}
	flush()
	for _, p := range parts {
		if p.PV != "" {
			return parts, nil
		}
	}
	return nil, fmt.Errorf("%q has no variable: every call would hash alike", s)
}

func isHashPVar(name string) bool {
	for _, v := range HashPVars {
		if v == name {
			return true
		}
	}
	return false
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
