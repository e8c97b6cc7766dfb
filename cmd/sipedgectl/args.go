package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// convertArgs turns command-line words into positional params with kamctl's
// convention: integer-looking words become JSON numbers (their text kept
// exactly, as json.Number), "s:" forces a string, "i:" an integer.
func convertArgs(words []string) ([]any, error) {
	params := make([]any, len(words))
	for i, w := range words {
		switch {
		case strings.HasPrefix(w, "s:"):
			params[i] = w[len("s:"):]
		case strings.HasPrefix(w, "i:"):
			n, err := strconv.ParseInt(strings.TrimSpace(w[len("i:"):]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("param %d %q: i: wants an integer", i+1, w)
			}
			params[i] = json.Number(strconv.FormatInt(n, 10))
		case isJSONInteger(w):
			params[i] = json.Number(w)
		default:
			params[i] = w
		}
	}
	return params, nil
}

// isJSONInteger reports whether w is sent as a number without a prefix:
// valid JSON integers only, so "007" (a leading zero), "+1" and "1.5" stay
// strings.
func isJSONInteger(w string) bool {
	w = strings.TrimPrefix(w, "-")
	if w == "" || (w[0] == '0' && len(w) > 1) {
		return false
	}
	for _, c := range w {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
