package sipproxy

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/sipedge/sipedge/tests/fixtures"
	"github.com/sipedge/sipedge/userspace/dispatch"
)

// -update rewrites the out sections of tests/fixtures/cases from what
// Process produces. Review the diff line by line: the fixtures are the
// contract's executable form, shared with the XDP program.
var update = flag.Bool("update", false, "rewrite the fixtures' out sections from Process")

// fixtureDispatcher builds the dispatcher every fixture runs against, with
// the default ds_hash_fallback.
func fixtureDispatcher(t testing.TB) *dispatch.Dispatcher {
	t.Helper()
	return fixtureDispatcherFor(t, fixtures.Case{})
}

// fixtureDispatcherFor builds the dispatcher case c runs against (its
// hash_fallback).
func fixtureDispatcherFor(t testing.TB, c fixtures.Case) *dispatch.Dispatcher {
	t.Helper()
	entries, err := fixtures.Entries(fixtures.Dir())
	if err != nil {
		t.Fatal(err)
	}
	noDNS := func(context.Context, string) ([]netip.Addr, error) {
		return nil, errors.New("fixtures use no DNS")
	}
	snap, err := dispatch.Build(context.Background(), entries, c.Options(noDNS))
	if err != nil {
		t.Fatal(err)
	}
	return dispatch.New(snap)
}

// fixtureForwarder builds a Forwarder with the case's one listener.
func fixtureForwarder(t testing.TB, d *dispatch.Dispatcher, c fixtures.Case) *Forwarder {
	t.Helper()
	owns := c.OwnsTransaction
	f, err := NewForwarder(d, []Listener{{
		Name:      "fixture",
		Addr:      c.Listener,
		Advertise: c.Advertise,
		Rule: Rule{
			SetID:             c.Rule.SetID,
			Alg:               dispatch.Alg(c.Rule.Alg),
			Limit:             c.Rule.Limit,
			RecordRoute:       c.Rule.RecordRoute,
			Failover:          c.Rule.Failover,
			HashPVar:          c.Rule.HashPVar,
			NoDestinationCode: c.Rule.NoDestinationCode,
		},
	}}, Options{OwnsTransaction: func(branch, sentBy []byte, ack bool) bool { return owns }})
	if err != nil {
		t.Fatalf("%s: %v", c.File, err)
	}
	return f
}

func loadFixtures(t testing.TB) []fixtures.Case {
	t.Helper()
	cases, err := fixtures.Load(fixtures.Dir())
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestFixtures runs every fixture through Process and compares the action,
// the destination, the reply and the bytes exactly.
func TestFixtures(t *testing.T) {
	ds := map[dispatch.HashFallback]*dispatch.Dispatcher{}
	for _, c := range loadFixtures(t) {
		if ds[c.HashFallback] == nil {
			ds[c.HashFallback] = fixtureDispatcherFor(t, c)
		}
		t.Run(c.Name, func(t *testing.T) {
			f := fixtureForwarder(t, ds[c.HashFallback], c)
			res := f.Process(c.In, c.Src, c.Listener, nil)
			if *update {
				if err := rewriteOut(c.File, res.Out); err != nil {
					t.Fatal(err)
				}
				c.Out = res.Out
			}
			if got := res.Action.String(); got != c.Action {
				t.Fatalf("%s: action %s (%s), want %s", c.File, got, res.Reason, c.Action)
			}
			if c.Dst.IsValid() && res.Dst != c.Dst {
				t.Errorf("%s: dst %v, want %v", c.File, res.Dst, c.Dst)
			}
			if c.DstHost != "" && (res.DstHost != c.DstHost || res.DstPort != c.DstPort) {
				t.Errorf("%s: dst host %s:%d, want %s:%d", c.File, res.DstHost, res.DstPort, c.DstHost, c.DstPort)
			}
			if c.Code != 0 && res.Code != c.Code {
				t.Errorf("%s: code %d, want %d", c.File, res.Code, c.Code)
			}
			if c.Reason != "" && res.Reason != c.Reason {
				t.Errorf("%s: reason %q, want %q", c.File, res.Reason, c.Reason)
			}
			if c.Out != nil && !bytes.Equal(res.Out, c.Out) {
				t.Errorf("%s: out differs\n got: %q\nwant: %q", c.File, res.Out, c.Out)
			}
			if c.Out == nil && res.Action == ActionForward {
				t.Errorf("%s: forwarded but the fixture has no out section", c.File)
			}
		})
	}
}

// rewriteOut replaces the out section of a fixture file.
func rewriteOut(file string, out []byte) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte("\n-- out --\n"))
	if i < 0 {
		return nil
	}
	text := string(out)
	if strings.Contains(strings.ReplaceAll(text, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(text, "\r\n", ""), "\r") {
		return errors.New(file + ": output has a bare CR or LF; fixtures cannot hold it")
	}
	b = append(b[:i+len("\n-- out --\n")], strings.ReplaceAll(text, "\r\n", "\n")...)
	return os.WriteFile(file, b, 0o644)
}
