package config

import (
	"testing"
)

// TestCheckHashPVar: the template grammar is package pvar's (tested
// there); what alg 7 adds is tested here.
func TestCheckHashPVar(t *testing.T) {
	tests := []struct {
		name, in, err string
	}{
		{name: "kamailio example", in: "hash the $fU@$ci"},
		{name: "a header", in: "$hdr(X-Tenant)"},
		{name: "unknown", in: "$ciabc", err: `"$ciabc": unknown variable $ciabc (allowed: $ci $fu $fU $fd $ft $tu $tU $td $tt $ru $rU $rd $rm $si $sp $du $hdr(Name))`},
		{name: "no variable", in: "static", err: `"static" has no variable: every call would hash alike`},
		{name: "the destination", in: "$du", err: `"$du": $du is the destination algorithm 7 picks: it cannot be hashed to pick it`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkHashPVar(tc.in)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Errorf("error = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestParsePingReplyCodes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		accepts []int
		rejects []int
		err     string
	}{
		{name: "empty", in: "", accepts: []int{200, 202, 299}, rejects: []int{199, 300, 403, 408}},
		{name: "kamailio example", in: "class=2;code=403;code=488;class=3", accepts: []int{200, 301, 403, 488}, rejects: []int{404, 408, 503}},
		{name: "blanks, case, trailing ;", in: " CODE = 404 ; class=5;", accepts: []int{404, 503}, rejects: []int{403}},
		{name: "code out of range", in: "code=2", err: `"code=2": code 2 is not a SIP status code (100-699)`},
		{name: "class out of range", in: "class=0", err: `"class=0": class 0 is not 1-6`},
		{name: "empty entry", in: "code=403;;class=3", err: `"code=403;;class=3": empty entry (want class=N or code=NNN, separated by ';')`},
		{name: "colons", in: "code=403:code=404", err: `"code=403:code=404": "code=403:code=404" is not class=N or code=NNN`},
		{name: "unknown name", in: "status=403", err: `"status=403": "status=403" is not class=N or code=NNN`},
		{name: "sign", in: "code=+403", err: `"code=+403": "code=+403" is not class=N or code=NNN`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := ParsePingReplyCodes(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("error = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.accepts {
				if !rc.Accepts(c) {
					t.Errorf("Accepts(%d) = false", c)
				}
			}
			for _, c := range tc.rejects {
				if rc.Accepts(c) {
					t.Errorf("Accepts(%d) = true", c)
				}
			}
		})
	}
}
