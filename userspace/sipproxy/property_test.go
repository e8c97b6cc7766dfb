package sipproxy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/sipedge/sipedge/userspace/sipmsg"
)

// propertyInputs are the fixtures' datagrams and the RFC 4475 torture
// messages, each with the source it should come from.
func propertyInputs(t *testing.T) []propertyInput {
	t.Helper()
	var ins []propertyInput
	for _, c := range loadFixtures(t) {
		ins = append(ins, propertyInput{name: filepath.Base(c.File), in: c.In, src: c.Src})
	}
	files, err := filepath.Glob("../sipmsg/testdata/torture/*/*.dat")
	if err != nil || len(files) == 0 {
		t.Fatalf("torture corpus: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, propertyInput{name: filepath.Base(f), in: b, src: testSrc})
	}
	return ins
}

type propertyInput struct {
	name string
	in   []byte
	src  netip.AddrPort
}

// TestForwardedMessagesParse is the property test: every forwarded
// request parses back with sipgo's parser with our Via on top, every
// forwarded response parses back, and every output's Content-Length (when
// present) equals its body length.
func TestForwardedMessagesParse(t *testing.T) {
	d := fixtureDispatcher(t)
	rules := []struct {
		name string
		l    Listener
	}{
		{"plain", Listener{Addr: testLocal, Rule: Rule{SetID: 1}}},
		{"record-route, hash set", Listener{Addr: testLocal, Rule: Rule{SetID: 2, RecordRoute: true}}},
		{"advertised name", Listener{Addr: testLocal, Advertise: "edge.example.com:5080", Rule: Rule{SetID: 1, RecordRoute: true}}},
	}
	forwarded := 0
	for _, r := range rules {
		f, err := NewForwarder(d, []Listener{r.l}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		advHost, advPort := splitHostPort(advText(r.l))
		for _, pi := range propertyInputs(t) {
			// Run each input as sent and as a response to our Via.
			for _, in := range [][]byte{pi.in, asOurResponse(pi.in, advText(r.l))} {
				if in == nil {
					continue
				}
				res := f.Process(in, pi.src, r.l.Addr, nil)
				if res.Action != ActionForward {
					continue
				}
				forwarded++
				checkForwarded(t, r.name+"/"+pi.name, in, res.Out, advHost, advPort)
			}
		}
	}
	if forwarded < 50 {
		t.Errorf("only %d messages forwarded; the property needs more inputs", forwarded)
	}
}

// asOurResponse turns a response into one whose top Via is ours by adding
// a Via line for ADV before the first header; nil for requests.
func asOurResponse(in []byte, adv string) []byte {
	if !strings.HasPrefix(string(in), "SIP/2.0 ") {
		return nil
	}
	i := strings.Index(string(in), "\r\n")
	if i < 0 {
		return nil
	}
	return []byte(string(in[:i+2]) + "Via: SIP/2.0/UDP " + adv + ";branch=z9hG4bKours1\r\n" + string(in[i+2:]))
}

func checkForwarded(t *testing.T, name string, in, out []byte, advHost string, advPort int) {
	t.Helper()
	var m sipmsg.Msg
	if err := sipmsg.Parse(out, &m); err != nil {
		t.Errorf("%s: output does not re-parse with sipmsg: %v\n%q", name, err, out)
		return
	}
	if m.ContentLength >= 0 && m.ContentLength != len(out)-m.Body {
		t.Errorf("%s: Content-Length %d, body %d bytes", name, m.ContentLength, len(out)-m.Body)
	}
	if _, err := sip.ParseMessage(in); err != nil {
		// sipgo rejects some inputs sipedge forwards (e.g. RFC 4475
		// messages it does not take); only outputs of inputs it takes are
		// held to it.
		t.Logf("%s: sipgo rejects the input too: %v", name, err)
		return
	}
	msg, err := sip.ParseMessage(out)
	if err != nil {
		t.Errorf("%s: sipgo cannot parse the output: %v\n%q", name, err, out)
		return
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return
	}
	via := req.Via()
	if via == nil {
		t.Errorf("%s: no Via in the output", name)
		return
	}
	branch, _ := via.Params.Get("branch")
	if via.Host != strings.Trim(advHost, "[]") || via.Port != advPort || !strings.HasPrefix(branch, branchCookie) ||
		via.Transport != "UDP" {
		t.Errorf("%s: top Via %s, want ours (%s:%s)", name, via.Value(), advHost, strconv.Itoa(advPort))
	}
}
