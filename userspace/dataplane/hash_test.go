package dataplane_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/wordhash"
)

// TestBranchTokenVectors holds the Go twin of the C token hash to the shared
// vectors of the contract (userspace/sipproxy/testdata/branch-vectors.json).
func TestBranchTokenVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "sipproxy", "testdata", "branch-vectors.json"))
	if err != nil {
		t.Skipf("no shared vectors yet: %v", err)
	}
	var vecs []struct {
		Branch string `json:"branch"`
		SentBy string `json:"sent_by"`
		CallID string `json:"call_id"`
		CSeq   string `json:"cseq"`
		Token  string `json:"token"`
	}
	if err := json.Unmarshal(b, &vecs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vecs {
		if v.CSeq != "" {
			continue // no-cookie tokens: the fast path passes those (PASS_VIA_NO_COOKIE)
		}
		got := fmt.Sprintf("%016x", wordhash.BranchToken([]byte(v.Branch), []byte(v.SentBy), []byte(strings.Trim(v.CallID, " \t"))))
		if got != v.Token {
			t.Errorf("BranchToken(%q, %q, %q) = %s, want %s", v.Branch, v.SentBy, v.CallID, got, v.Token)
		}
	}
}

// randText returns n bytes drawn from chars, with a byte >= 0x80 now and then
// when high (Kamailio's hash reads signed chars: those bytes are where a
// word-wise implementation can go wrong; only the Call-ID may carry them).
func randText(r *rand.Rand, n int, chars string, high bool) string {
	b := make([]byte, n)
	for i := range b {
		if high && r.IntN(5) == 0 {
			b[i] = byte(0x80 + r.IntN(0x80))
			continue
		}
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

const (
	alnum     = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	wordChars = alnum + "-.!%*_+`'~()<>:\\\"/[]?{}" // Call-ID word characters
	userChars = alnum + "-_.!~*'"                   // URI user characters
	hostChars = "abcdefghijklmnopqrstuvwxyz0123456789-"
	valueChar = alnum + "-._" // Via parameter values the fast path takes
)

var viaToken = regexp.MustCompile(`branch=z9hG4bK0?([0-9a-f]{16})\r\n`)

// TestHashesAgainstGo sends random requests through the program and checks
// that the C hashes equal their Go twins: Kamailio's ds_get_hash (the pick
// over a 64-destination set, i.e. 6 bits of the hash per message, for algs
// 0, 1, 2 and 3) and the branch token (all 64 bits).
func TestHashesAgainstGo(t *testing.T) {
	env := newEnv(t)
	var list strings.Builder
	for i := 0; i < 64; i++ {
		fmt.Fprintf(&list, "5 sip:10.1.0.%d:5060\n", i+1)
	}
	snap := buildSnapshot(t, list.String(), dispatch.Options{})
	if err := env.DP.SyncSets(snap); err != nil {
		t.Fatal(err)
	}
	lis := netip.MustParseAddrPort("192.0.2.10:5060")
	src := netip.MustParseAddrPort("198.51.100.7:5060")
	r := rand.New(rand.NewPCG(1, 2))
	for _, alg := range []dispatch.Alg{dispatch.AlgCallID, dispatch.AlgFromURI, dispatch.AlgToURI, dispatch.AlgRURI} {
		if err := env.DP.SyncListeners([]dataplane.Listener{{Addr: lis, Rule: dataplane.Rule{SetID: 5, Alg: int(alg)}}}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 300; i++ {
			callID := randText(r, 1+r.IntN(80), wordChars, true)
			branch := "z9hG4bK" + randText(r, r.IntN(40), valueChar, false)
			user := randText(r, r.IntN(12), userChars, false)
			host := "h" + randText(r, r.IntN(10), hostChars, false) + ".example.com"
			port := []int{0, 5060, 5080, 1}[r.IntN(4)]
			uri := "sip:" + host
			if user != "" {
				uri = "sip:" + user + "@" + host
			}
			if port != 0 {
				uri += ":" + strconv.Itoa(port)
			}
			msg := fmt.Sprintf("OPTIONS %s SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.7:5060;branch=%s\r\n"+
				"To: <%s>\r\nFrom: <%s>;tag=1\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
				uri, branch, uri, uri, callID)
			o := send(t, env, src, lis, []byte(msg))
			if o.verdict != dptest.XDPRedirect || o.err != nil {
				t.Fatalf("alg %d: %q: verdict %s (%s) %v", alg, msg, verdictName(o.verdict), o.reason, o.err)
			}
			key := dispatch.URIKey{User: user, Host: host, Port: port}
			sel, err := snap.Select(5, alg, dispatch.Key{CallID: callID, From: key, To: key, RURI: key}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if o.frame.Dst != sel.Dests[0].Addr {
				t.Errorf("alg %d: %q: sent to %s, Go picks %s", alg, msg, o.frame.Dst, sel.Dests[0].Addr)
			}
			m := viaToken.FindSubmatch(o.frame.Payload)
			want := fmt.Sprintf("%016x", wordhash.BranchToken([]byte(branch), []byte("198.51.100.7:5060"), []byte(callID)))
			if m == nil || string(m[1]) != want {
				t.Errorf("token in %q, want %s", o.frame.Payload, want)
			}
		}
	}
}
