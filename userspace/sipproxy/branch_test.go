package sipproxy

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// branchVector is one entry of testdata/branch-vectors.json, the vectors
// shared with the XDP program and copied into the contract's table. An
// entry with cseq is the no-cookie variant.
type branchVector struct {
	Branch string  `json:"branch"`
	SentBy string  `json:"sent_by"`
	CallID string  `json:"call_id"`
	CSeq   *string `json:"cseq,omitempty"`
	Token  string  `json:"token"`
}

func TestBranchVectors(t *testing.T) {
	b, err := os.ReadFile("testdata/branch-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vecs []branchVector
	if err := json.Unmarshal(b, &vecs); err != nil {
		t.Fatal(err)
	}
	lens := map[int]bool{}
	for _, v := range vecs {
		lens[len(v.Branch)], lens[len(v.SentBy)], lens[len(v.CallID)] = true, true, true
		name := fmt.Sprintf("%q/%q/%q", v.Branch, v.SentBy, v.CallID)
		t.Run(name, func(t *testing.T) {
			var got uint64
			if v.CSeq != nil {
				got = BranchTokenNoCookie([]byte(v.SentBy), []byte(v.CallID), []byte(*v.CSeq))
			} else {
				got = BranchToken([]byte(v.Branch), []byte(v.SentBy), []byte(v.CallID))
			}
			if s := fmt.Sprintf("%016x", got); s != v.Token {
				t.Errorf("token %s, want %s", s, v.Token)
			}
		})
	}
	// The vectors must exercise every tail length that matters.
	for _, n := range []int{0, 7, 8, 9, 16, 17} {
		if !lens[n] {
			t.Errorf("no vector has a field of length %d", n)
		}
	}
	if len(vecs) < 8 {
		t.Errorf("%d vectors, want at least 8", len(vecs))
	}
}

func TestBranchTokenProperties(t *testing.T) {
	cid := []byte("a84b4c76e66710@pc33.atlanta.example.com")
	base := BranchToken([]byte("z9hG4bKnashds8"), []byte("198.51.100.7:5060"), cid)
	tests := []struct {
		name   string
		token  uint64
		sameAs bool
	}{
		{"retransmission", BranchToken([]byte("z9hG4bKnashds8"), []byte("198.51.100.7:5060"), cid), true},
		{"Call-ID with blanks around", BranchToken([]byte("z9hG4bKnashds8"), []byte("198.51.100.7:5060"), []byte(" \t"+string(cid)+" ")), true},
		{"new client branch", BranchToken([]byte("z9hG4bKnashds9"), []byte("198.51.100.7:5060"), cid), false},
		{"other sent-by", BranchToken([]byte("z9hG4bKnashds8"), []byte("198.51.100.7:5062"), cid), false},
		{"field boundary moved", BranchToken([]byte("z9hG4bKnashds"), []byte("8198.51.100.7:5060"), cid), false},
		{"no-cookie variant", BranchTokenNoCookie([]byte("198.51.100.7:5060"), cid, []byte("314159")), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.token == base) != tc.sameAs {
				t.Errorf("token %016x vs base %016x: same=%v, want %v", tc.token, base, tc.token == base, tc.sameAs)
			}
		})
	}
	inv := BranchTokenNoCookie([]byte("h"), cid, []byte("7"))
	if BranchTokenNoCookie([]byte("h"), cid, []byte("8")) == inv {
		t.Error("no-cookie: a new CSeq number must give a new token")
	}
}
