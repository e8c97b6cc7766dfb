package dispatch

import (
	"encoding/json"
	"os"
	"testing"
)

// The first five vectors were checked against Kamailio 5.6.3 (dispatcher.hash).
// The vectors with bytes >= 0x80 come from this implementation of the signed
// char rule and were cross-checked with an independent model of the C code.
// Worked example, "\xff": the tail word is v = 0<<8 + (int8)0xff =
// 0xffffffff, so h = v ^ v>>3 = 0xe0000000, and the finish gives
// 0xe0000000 + 0x1c0000 + 0x70000 + 0x1c0 = 3760390592. Reading bytes as
// unsigned would give v = 0xff and a hash of 224.
func TestHash(t *testing.T) {
	tests := []struct {
		name string
		x, y string
		want uint32
	}{
		{name: "abc", x: "abc", want: 7167810},
		{name: "call-id", x: "a84b4c76e66710@pc33.atlanta.com", want: 2175018094},
		{name: "alice at example.com", x: "alice", y: "example.com", want: 1442294598},
		{name: "bob at server.com", x: "bob", y: "server.com", want: 3883463682},
		{name: "alice with port", x: "alice", y: "example.com:5080", want: 4164599908},
		{name: "empty is 1 not 0", x: "", want: 1},
		{name: "single 0xff sign-extended", x: "\xff", want: 3760390592},
		{name: "five high bytes", x: "\x80\x81\x82\x83\x84", want: 1350378589},
		{name: "utf-8 u-umlaut", x: "ü", want: 3760405683},
		{name: "utf-8 in both keys", x: "jürgen", y: "münchen.de", want: 905634458},
		{name: "utf-8 euro in a full word", x: "€uro", y: "example.com", want: 3867045716},
		{name: "utf-8 cjk", x: "日本語テキスト", want: 2161612548},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Hash(tc.x, tc.y); got != tc.want {
				t.Errorf("Hash(%q, %q) = %d, want %d", tc.x, tc.y, got, tc.want)
			}
		})
	}
}

func TestHashEmptyYIsNoY(t *testing.T) {
	tests := []struct {
		name string
		x    string
	}{
		{name: "ascii", x: "abc"},
		{name: "word aligned", x: "abcd"},
		{name: "high bytes", x: "\xfe\xff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if Hash(tc.x, "") != Hash("", tc.x) {
				t.Errorf("Hash(%q, \"\") != Hash(\"\", %q)", tc.x, tc.x)
			}
		})
	}
}

// TestHashVectorsFile checks the vectors the C/BPF tests share.
func TestHashVectorsFile(t *testing.T) {
	raw, err := os.ReadFile("testdata/hash-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		X    string `json:"x"`
		Y    string `json:"y"`
		Hash uint32 `json:"hash"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 5 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.X+"|"+v.Y, func(t *testing.T) {
			if got := Hash(v.X, v.Y); got != v.Hash {
				t.Errorf("Hash(%q, %q) = %d, file says %d", v.X, v.Y, got, v.Hash)
			}
		})
	}
}

func TestURIHashKeys(t *testing.T) {
	tests := []struct {
		name     string
		u        URIKey
		userOnly bool
		k1, k2   string
	}{
		{name: "no port", u: URIKey{User: "alice", Host: "example.com"}, k1: "alice", k2: "example.com"},
		{name: "port 5060 dropped", u: URIKey{User: "alice", Host: "example.com", Port: 5060}, k1: "alice", k2: "example.com"},
		{name: "port 5080 kept", u: URIKey{User: "alice", Host: "example.com", Port: 5080}, k1: "alice", k2: "example.com:5080"},
		{name: "sips 5061 dropped", u: URIKey{User: "a", Host: "h", Port: 5061, Secure: true}, k1: "a", k2: "h"},
		{name: "sips 5060 kept", u: URIKey{User: "a", Host: "h", Port: 5060, Secure: true}, k1: "a", k2: "h:5060"},
		{name: "ipv6", u: URIKey{Host: "[2001:db8::1]", Port: 5070}, k1: "", k2: "[2001:db8::1]:5070"},
		{name: "port hashed as written", u: URIKey{User: "a", Host: "h", Port: 5080, PortText: "05080"}, k1: "a", k2: "h:05080"},
		{name: "default port written with a zero is still dropped", u: URIKey{User: "a", Host: "h", Port: 5060, PortText: "05060"}, k1: "a", k2: "h"},
		{name: "sips port 5060 as written", u: URIKey{User: "a", Host: "h", Port: 5060, PortText: "05060", Secure: true}, k1: "a", k2: "h:05060"},
		{name: "tel", u: URIKey{User: "+12002641610", Tel: true}, k1: "+12002641610", k2: ""},
		{name: "user only", u: URIKey{User: "alice", Host: "example.com", Port: 5080}, userOnly: true, k1: "alice", k2: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k1, k2 := URIHashKeys(tc.u, tc.userOnly)
			if k1 != tc.k1 || k2 != tc.k2 {
				t.Errorf("got (%q, %q), want (%q, %q)", k1, k2, tc.k1, tc.k2)
			}
		})
	}
}
