package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// testEntries is a small list: set 1 with two destinations (the second
// listed has the higher priority, so it is IDX 0), set 2 behind a host name,
// set 3 with an IPv6 destination. Set 3 is listed before set 2, to show
// the output is by ID.
func testEntries() []dispatch.Entry {
	return []dispatch.Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Flags: dispatch.FlagInactive, Source: "test:1"},
		{SetID: 1, URI: "sip:10.0.0.2:5060", Flags: dispatch.FlagProbing, Priority: 5, Attrs: "duid=gw2;weight=50", Source: "test:2"},
		{SetID: 3, URI: "sip:[2001:db8::1]:5070", Attrs: "socket=udp:127.0.0.1:5060;ping_from=sip:lb@edge", Source: "test:3"},
		{SetID: 2, URI: "sip:backend.example.com:5080", Source: "test:4"},
	}
}

func testDispatcher(t *testing.T) *dispatch.Dispatcher {
	t.Helper()
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "backend.example.com" {
			return []netip.Addr{netip.MustParseAddr("192.0.2.7")}, nil
		}
		return nil, errors.New("unexpected lookup of " + host)
	}
	snap, err := dispatch.Build(context.Background(), testEntries(), dispatch.Options{Resolver: resolve})
	if err != nil {
		t.Fatal(err)
	}
	return dispatch.New(snap)
}

// rpcCall runs one request through s and returns the answer line.
func rpcCall(t *testing.T, s *Server, method string, params ...any) string {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	req, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
	if err != nil {
		t.Fatal(err)
	}
	return string(s.handleMessage(context.Background(), req))
}

func ok(result string) string   { return `{"jsonrpc":"2.0","result":` + result + `,"id":1}` }
func fail(errObj string) string { return `{"jsonrpc":"2.0","error":` + errObj + `,"id":1}` }

// iuids replaces each destination's IUID (dispatch's business, not ours)
// with IUID-<set>-<uri> so expected outputs can be written by hand.
func iuids(d *dispatch.Dispatcher, s string) string {
	for _, set := range d.Snapshot().Sets() {
		for _, dst := range set.Dests {
			s = strings.ReplaceAll(s, dst.IUID, "IUID-"+dst.URI)
		}
	}
	return s
}

func TestDispatcherList(t *testing.T) {
	tests := []struct {
		name   string
		params []any
		want   string
	}{
		{
			name: "normal",
			want: ok(`{"NRSETS":3,"RECORDS":[` +
				`{"SET":{"ID":1,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"IUID-sip:10.0.0.2:5060",` +
				`"ATTRS":{"BODY":"duid=gw2;weight=50","DUID":"gw2","PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":50,"RWEIGHT":0,"SOCKET":null,"SOCKNAME":null,"PING_SOCKET":null,"OBPROXY":null,"OCMIN":0,"OCMAX":100}}},` +
				`{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"IUID-sip:10.0.0.1"}}]}},` +
				`{"SET":{"ID":2,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:backend.example.com:5080","FLAGS":"AX","PRIORITY":0,"IUID":"IUID-sip:backend.example.com:5080"}}]}},` +
				`{"SET":{"ID":3,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:[2001:db8::1]:5070","FLAGS":"AX","PRIORITY":0,"IUID":"IUID-sip:[2001:db8::1]:5070",` +
				`"ATTRS":{"BODY":"socket=udp:127.0.0.1:5060;ping_from=sip:lb@edge","DUID":null,"PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":0,"RWEIGHT":0,"SOCKET":"udp:127.0.0.1:5060","SOCKNAME":null,"PING_SOCKET":null,"OBPROXY":null,"OCMIN":0,"OCMAX":100}}}]}}]}`),
		},
		{
			name:   "short has no ATTRS",
			params: []any{"short"},
			want: ok(`{"NRSETS":3,"RECORDS":[` +
				`{"SET":{"ID":1,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"IUID-sip:10.0.0.2:5060"}},` +
				`{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"IUID-sip:10.0.0.1"}}]}},` +
				`{"SET":{"ID":2,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:backend.example.com:5080","FLAGS":"AX","PRIORITY":0,"IUID":"IUID-sip:backend.example.com:5080"}}]}},` +
				`{"SET":{"ID":3,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:[2001:db8::1]:5070","FLAGS":"AX","PRIORITY":0,"IUID":"IUID-sip:[2001:db8::1]:5070"}}]}}]}`),
		},
		{
			name:   "full adds address fields and ATTRS everywhere",
			params: []any{"FULL"},
			want: ok(`{"NRSETS":3,"RECORDS":[` +
				`{"SET":{"ID":1,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"IUID-sip:10.0.0.2:5060","HOST":"10.0.0.2","IPADDR":"10.0.0.2","PORT":5060,"PROTOID":1,` +
				`"ATTRS":{"BODY":"duid=gw2;weight=50","DUID":"gw2","PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":50,"RWEIGHT":0,"SOCKET":null,"SOCKNAME":null,"PING_SOCKET":null,"OBPROXY":null,"OCMIN":0,"OCMAX":100}}},` +
				`{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"IUID-sip:10.0.0.1","HOST":"10.0.0.1","IPADDR":"10.0.0.1","PORT":0,"PROTOID":1,` +
				`"ATTRS":{"BODY":null,"DUID":null,"PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":0,"RWEIGHT":0,"SOCKET":null,"SOCKNAME":null,"PING_SOCKET":null,"OBPROXY":null,"OCMIN":0,"OCMAX":100}}}]}},` +
				`{"SET":{"ID":2,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:backend.example.com:5080","FLAGS":"AX","PRIORITY":0,"IUID":"IUID-sip:backend.example.com:5080","HOST":"backend.example.com","IPADDR":"192.0.2.7","PORT":5080,"PROTOID":1,` +
				`"ATTRS":{"BODY":null,"DUID":null,"PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":0,"RWEIGHT":0,"SOCKET":null,"SOCKNAME":null,"PING_SOCKET":null,"OBPROXY":null,"OCMIN":0,"OCMAX":100}}}]}},` +
				`{"SET":{"ID":3,"TARGETS":[` +
				`{"DEST":{"IDX":0,"URI":"sip:[2001:db8::1]:5070","FLAGS":"AX","PRIORITY":0,"IUID":"IUID-sip:[2001:db8::1]:5070","HOST":"[2001:db8::1]","IPADDR":"2001:db8::1","PORT":5070,"PROTOID":1,` +
				`"ATTRS":{"BODY":"socket=udp:127.0.0.1:5060;ping_from=sip:lb@edge","DUID":null,"PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":0,"RWEIGHT":0,"SOCKET":"udp:127.0.0.1:5060","SOCKNAME":null,"PING_SOCKET":null,"OBPROXY":null,"OCMIN":0,"OCMAX":100}}}]}}]}`),
		},
		{
			name:   "unknown mode",
			params: []any{"ful"},
			want:   fail(`{"code":-32602,"message":"Invalid params","data":"param 1: mode \"ful\": want short or full"}`),
		},
		{
			name:   "extra params",
			params: []any{"full", 1},
			want:   fail(`{"code":-32602,"message":"Invalid params","data":"at most 1 params, got 2"}`),
		},
	}
	d := testDispatcher(t)
	s := New(nil)
	RegisterDispatcher(s, d, nil, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := iuids(d, rpcCall(t, s, "dispatcher.list", tc.params...)); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// With ds_ping_latency_stats on, every destination gets LATENCY after its
// ATTRS, in every mode (kamailio-behaviour §1.3), with Kamailio's keys and
// types: 10.0.0.2 (probing) had samples of 20 and 30 ms and one timeout,
// so AVG 25, STD √50, EST 25 (the mean, under 10 samples), MAX 30,
// TIMEOUT 1; 10.0.0.1 (no probing flag) is not measured.
func TestDispatcherListLatency(t *testing.T) {
	snap, err := dispatch.Build(context.Background(), testEntries()[:2], dispatch.Options{LatencyStats: true, LatencyAlpha: dispatch.DefaultLatencyAlpha})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	d.ProbeLatency(1, "sip:10.0.0.2:5060", 200, 20*time.Millisecond)
	d.ProbeLatency(1, "sip:10.0.0.2:5060", 408, 5*time.Second)
	d.ProbeLatency(1, "sip:10.0.0.2:5060", 200, 30*time.Millisecond)
	d.ProbeLatency(1, "sip:10.0.0.1", 200, 30*time.Millisecond)
	s := New(nil)
	RegisterDispatcher(s, d, nil, 0)

	measured := `"LATENCY":{"AVG":25,"STD":7.071068,"EST":25,"MAX":30,"TIMEOUT":1}`
	zero := `"LATENCY":{"AVG":0,"STD":0,"EST":0,"MAX":0,"TIMEOUT":0}`
	want := ok(`{"NRSETS":1,"RECORDS":[{"SET":{"ID":1,"TARGETS":[` +
		`{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"IUID-sip:10.0.0.2:5060",` +
		`"ATTRS":{"BODY":"duid=gw2;weight=50","DUID":"gw2","PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":50,"RWEIGHT":0,"SOCKET":null,"SOCKNAME":null,"PING_SOCKET":null,"OBPROXY":null,"OCMIN":0,"OCMAX":100},` +
		measured + `}},` +
		`{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"IUID-sip:10.0.0.1",` + zero + `}}]}}]}`)
	if got := iuids(d, rpcCall(t, s, "dispatcher.list")); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	wantShort := ok(`{"NRSETS":1,"RECORDS":[{"SET":{"ID":1,"TARGETS":[` +
		`{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"IUID-sip:10.0.0.2:5060",` + measured + `}},` +
		`{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"IUID-sip:10.0.0.1",` + zero + `}}]}}]}`)
	if got := iuids(d, rpcCall(t, s, "dispatcher.list", "short")); got != wantShort {
		t.Errorf("short:\n got %s\nwant %s", got, wantShort)
	}
}

// With call load on (ds_hash_size > 0) every destination gets
// RUNTIME.DLGLOAD after LATENCY, as in Kamailio: the calls of its duid
// (gw2 carries the one call; 10.0.0.1, without a duid, shows 0).
func TestDispatcherListDLGLoad(t *testing.T) {
	snap, err := dispatch.Build(context.Background(), testEntries()[:2], dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	d.EnableCallLoad(dispatch.DefaultCallLoadConfig(), nil)
	if _, err := d.Select(1, dispatch.AlgCallLoad, dispatch.Key{CallID: "c1", CallIDHash: 1, Invite: true}, 0); err != nil {
		t.Fatal(err)
	}
	s := New(nil)
	RegisterDispatcher(s, d, nil, 0)
	want := ok(`{"NRSETS":1,"RECORDS":[{"SET":{"ID":1,"TARGETS":[` +
		`{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"IUID-sip:10.0.0.2:5060","RUNTIME":{"DLGLOAD":1}}},` +
		`{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"IUID-sip:10.0.0.1","RUNTIME":{"DLGLOAD":0}}}]}}]}`)
	if got := iuids(d, rpcCall(t, s, "dispatcher.list", "short")); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

// NOT_PROBED (kamailio#4212) comes last, for the destinations the
// installed function names, in every mode; the others have no key.
func TestDispatcherListNotProbed(t *testing.T) {
	snap, err := dispatch.Build(context.Background(), testEntries()[:2], dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	s := New(nil)
	m := RegisterDispatcher(s, d, nil, 0)
	m.SetNotProbed(func(setID int, iuid string) string {
		if setID == 1 && iuid == d.Snapshot().Set(1).Dests[1].IUID {
			return "sip:10.0.0.1: no listener of the address family of 10.0.0.1:5060"
		}
		return ""
	})
	want := ok(`{"NRSETS":1,"RECORDS":[{"SET":{"ID":1,"TARGETS":[` +
		`{"DEST":{"IDX":0,"URI":"sip:10.0.0.2:5060","FLAGS":"AP","PRIORITY":5,"IUID":"IUID-sip:10.0.0.2:5060"}},` +
		`{"DEST":{"IDX":1,"URI":"sip:10.0.0.1","FLAGS":"IX","PRIORITY":0,"IUID":"IUID-sip:10.0.0.1",` +
		`"NOT_PROBED":"sip:10.0.0.1: no listener of the address family of 10.0.0.1:5060"}}]}}]}`)
	if got := iuids(d, rpcCall(t, s, "dispatcher.list", "short")); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestDispatcherListEmpty(t *testing.T) {
	s := New(nil)
	RegisterDispatcher(s, dispatch.New(nil), nil, 0)
	want := fail(`{"code":500,"message":"No Destination Sets"}`)
	if got := rpcCall(t, s, "dispatcher.list"); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

// flagsOf returns URI → FLAGS of set 1 from dispatcher.list.
func flagsOf(t *testing.T, s *Server) map[string]string {
	t.Helper()
	var resp struct {
		Result DispatcherList `json:"result"`
	}
	if err := json.Unmarshal([]byte(rpcCall(t, s, "dispatcher.list")), &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, rec := range resp.Result.Records {
		for _, tgt := range rec.Set.Targets {
			out[tgt.Dest.URI] = tgt.Dest.Flags
		}
	}
	return out
}

func TestDispatcherSetState(t *testing.T) {
	tests := []struct {
		name      string
		params    []any
		want      string
		wantFlags map[string]string // after the call, "" entries skipped
	}{
		{
			name:      "inactive probing",
			params:    []any{"ip", 1, "sip:10.0.0.2:5060"},
			want:      ok(`"Ok. Dispatcher state updated."`),
			wantFlags: map[string]string{"sip:10.0.0.2:5060": "IP", "sip:10.0.0.1": "IX"},
		},
		{
			name:      "numeric state and group as kamctl sends them",
			params:    []any{1, "1", "sip:10.0.0.1"},
			want:      ok(`"Ok. Dispatcher state updated."`),
			wantFlags: map[string]string{"sip:10.0.0.1": "AX"},
		},
		{
			name:      "all of a set",
			params:    []any{"d", 1, "all"},
			want:      ok(`"Ok. Dispatcher state updated."`),
			wantFlags: map[string]string{"sip:10.0.0.2:5060": "DX", "sip:10.0.0.1": "DX", "sip:backend.example.com:5080": "AX"},
		},
		{
			name:   "unknown state",
			params: []any{"x", 1, "all"},
			want:   fail(`{"code":500,"message":"Unknown State Value","data":"set state of \"all\" in set 1: state \"x\": bad state value"}`),
		},
		{
			name:   "unknown set",
			params: []any{"a", 9, "all"},
			want:   fail(`{"code":500,"message":"State Update Failed","data":"set state of \"all\" in set 9: no such destination set"}`),
		},
		{
			name:   "unknown destination",
			params: []any{"a", 1, "sip:10.9.9.9"},
			want:   fail(`{"code":500,"message":"State Update Failed","data":"set state of \"sip:10.9.9.9\" in set 1: no such destination"}`),
		},
		{
			name:   "group not a number",
			params: []any{"a", "one", "all"},
			want:   fail(`{"code":-32602,"message":"Invalid params","data":"param 2: want an integer, got \"one\""}`),
		},
		{
			name:   "missing address",
			params: []any{"a", 1},
			want:   fail(`{"code":-32602,"message":"Invalid params","data":"param 3: missing (got 2 params)"}`),
		},
	}
	// The cases run in order on one dispatcher: each sees the last's state.
	s := New(nil)
	RegisterDispatcher(s, testDispatcher(t), nil, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rpcCall(t, s, "dispatcher.set_state", tc.params...); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
			flags := flagsOf(t, s)
			for uri, want := range tc.wantFlags {
				if flags[uri] != want {
					t.Errorf("%s FLAGS %q, want %q", uri, flags[uri], want)
				}
			}
		})
	}
}

func TestDispatcherHash(t *testing.T) {
	tests := []struct {
		name   string
		params []any
		want   string
	}{
		// Vectors checked against Kamailio 5.6.3's dispatcher.hash.
		{name: "abc", params: []any{100, "abc"}, want: ok(`{"hashid":7167810,"slot":10}`)},
		{name: "call-id prints signed", params: []any{100, "a84b4c76e66710@pc33.atlanta.com"}, want: ok(`{"hashid":-2119949202,"slot":94}`)},
		{name: "two keys", params: []any{100, "alice", "example.com"}, want: ok(`{"hashid":1442294598,"slot":98}`)},
		{name: "two keys, high bit", params: []any{10, "bob", "server.com"}, want: ok(`{"hashid":-411503614,"slot":2}`)},
		{name: "no slots", params: []any{0, "alice", "example.com:5080"}, want: ok(`{"hashid":-130367388,"slot":0}`)},
		{name: "number hashed as its text", params: []any{100, json.Number("12345")}, want: rpcCallString(100, "12345")},
		{name: "missing value", params: []any{100}, want: fail(`{"code":-32602,"message":"Invalid params","data":"param 2: missing (got 1 params)"}`)},
	}
	s := New(nil)
	RegisterDispatcher(s, dispatch.New(nil), nil, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rpcCall(t, s, "dispatcher.hash", tc.params...); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// rpcCallString is the answer dispatcher.hash gives for a string value.
func rpcCallString(nslots int, v string) string {
	h := dispatch.Hash(v, "")
	b, _ := json.Marshal(HashResult{HashID: int32(h), Slot: h % uint32(nslots)})
	return ok(string(b))
}

func TestDispatcherPingActive(t *testing.T) {
	tests := []struct {
		name   string
		params []any
		want   string
	}{
		{name: "read", want: ok(`{"OldPingState":1}`)},
		{name: "turn off", params: []any{0}, want: ok(`{"NewPingState":0,"OldPingState":1}`)},
		{name: "read again", want: ok(`{"OldPingState":0}`)},
		{name: "turn on from a string", params: []any{"1"}, want: ok(`{"NewPingState":1,"OldPingState":0}`)},
		{name: "out of range", params: []any{2}, want: fail(`{"code":-32602,"message":"Invalid params","data":"param 1: state 2: want 0 (off) or 1 (on)"}`)},
	}
	s := New(nil)
	RegisterDispatcher(s, dispatch.New(nil), nil, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rpcCall(t, s, "dispatcher.ping_active", tc.params...); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestDispatcherAddRemove(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		params  []any
		want    string
		wantIn  []string // URIs of set 1 after the call, in IDX order
		wantErr bool     // want is only a prefix: the detail is dispatch's
	}{
		{
			name:   "add with flags, priority and attrs",
			method: "dispatcher.add", params: []any{1, "sip:10.0.0.9:5060", 8, 10, "duid=gw9"},
			want:   ok(`"Ok. Dispatcher destination added."`),
			wantIn: []string{"sip:10.0.0.9:5060", "sip:10.0.0.2:5060", "sip:10.0.0.1"},
		},
		{
			name:   "add minimal to a new set",
			method: "dispatcher.add", params: []any{7, "sip:10.0.0.7"},
			want:   ok(`"Ok. Dispatcher destination added."`),
			wantIn: []string{"sip:10.0.0.9:5060", "sip:10.0.0.2:5060", "sip:10.0.0.1"},
		},
		{
			name:   "add with flags out of range",
			method: "dispatcher.add", params: []any{1, "sip:10.0.0.8", 64},
			want:   fail(`{"code":-32602,"message":"Invalid params","data":"param 3: flags 64: want 0..63"}`),
			wantIn: []string{"sip:10.0.0.9:5060", "sip:10.0.0.2:5060", "sip:10.0.0.1"},
		},
		{
			name:   "add with bad attrs",
			method: "dispatcher.add", params: []any{1, "sip:10.0.0.8", 0, 0, "weight=500"},
			want:    `{"jsonrpc":"2.0","error":{"code":500,"message":"Adding dispatcher dst failed","data":"add \"sip:10.0.0.8\" to set 1: `,
			wantErr: true,
			wantIn:  []string{"sip:10.0.0.9:5060", "sip:10.0.0.2:5060", "sip:10.0.0.1"},
		},
		{
			name:   "remove",
			method: "dispatcher.remove", params: []any{1, "sip:10.0.0.2:5060"},
			want:   ok(`"Ok. Dispatcher destination removed."`),
			wantIn: []string{"sip:10.0.0.9:5060", "sip:10.0.0.1"},
		},
		{
			name:   "remove unknown",
			method: "dispatcher.remove", params: []any{1, "sip:10.0.0.2:5060"},
			want:   fail(`{"code":500,"message":"Removing dispatcher dst failed","data":"remove \"sip:10.0.0.2:5060\" from set 1: no such destination"}`),
			wantIn: []string{"sip:10.0.0.9:5060", "sip:10.0.0.1"},
		},
		{
			name:   "remove from unknown set",
			method: "dispatcher.remove", params: []any{5, "sip:10.0.0.1"},
			want:   fail(`{"code":500,"message":"Removing dispatcher dst failed","data":"remove \"sip:10.0.0.1\" from set 5: no such destination set"}`),
			wantIn: []string{"sip:10.0.0.9:5060", "sip:10.0.0.1"},
		},
	}
	// The cases run in order on one dispatcher.
	d := testDispatcher(t)
	s := New(nil)
	RegisterDispatcher(s, d, nil, time.Hour) // reload_delta does not gate add/remove
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rpcCall(t, s, tc.method, tc.params...)
			if tc.wantErr && !strings.HasPrefix(got, tc.want) || !tc.wantErr && got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
			var uris []string
			for _, dst := range d.Snapshot().Set(1).Dests {
				uris = append(uris, dst.URI)
			}
			if strings.Join(uris, " ") != strings.Join(tc.wantIn, " ") {
				t.Errorf("set 1 holds %q, want %q", uris, tc.wantIn)
			}
		})
	}
}

func TestDispatcherReload(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var calls int
	var reloadErr error
	reload := func(context.Context) error { calls++; return reloadErr }
	s := New(nil)
	registerDispatcher(s, dispatch.New(nil), reload, 5*time.Second, func() time.Time { return now })

	steps := []struct {
		name      string
		advance   time.Duration
		err       error
		params    []any
		want      string
		wantCalls int
	}{
		{name: "first reload", want: ok(`"Ok. Dispatcher successfully reloaded."`), wantCalls: 1},
		{
			name: "too soon", advance: 2 * time.Second,
			want:      fail(`{"code":500,"message":"Ongoing reload","data":"last reload 2s ago; reload_delta is 5s, retry in 3s"}`),
			wantCalls: 1,
		},
		{name: "after reload_delta", advance: 3 * time.Second, want: ok(`"Ok. Dispatcher successfully reloaded."`), wantCalls: 2},
		{
			name: "failing reload", advance: 5 * time.Second, err: errors.New("dispatcher.list:3: unknown flag \"X\""),
			want:      fail(`{"code":500,"message":"Reload Failed","data":"dispatcher.list:3: unknown flag \"X\""}`),
			wantCalls: 3,
		},
		{
			name: "a failed attempt also starts the clock", advance: time.Second,
			want:      fail(`{"code":500,"message":"Ongoing reload","data":"last reload 1s ago; reload_delta is 5s, retry in 4s"}`),
			wantCalls: 3,
		},
		{
			name: "no params taken", advance: time.Minute, params: []any{1},
			want:      fail(`{"code":-32602,"message":"Invalid params","data":"at most 0 params, got 1"}`),
			wantCalls: 3,
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			now = now.Add(st.advance)
			reloadErr = st.err
			if got := rpcCall(t, s, "dispatcher.reload", st.params...); got != st.want {
				t.Errorf("\n got %s\nwant %s", got, st.want)
			}
			if calls != st.wantCalls {
				t.Errorf("reload called %d times, want %d", calls, st.wantCalls)
			}
		})
	}
}

func TestDispatcherReloadUnconfigured(t *testing.T) {
	s := New(nil)
	RegisterDispatcher(s, dispatch.New(nil), nil, 0)
	want := fail(`{"code":500,"message":"Reload Failed","data":"no reload source configured"}`)
	if got := rpcCall(t, s, "dispatcher.reload"); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

// TestDispatcherAddChecksAsListFile: dispatcher.add refuses what a
// dispatcher.list line cannot hold (dispatch.Entry.Check, shared with the
// list parser), and the set stays as it was.
func TestDispatcherAddChecksAsListFile(t *testing.T) {
	d := testDispatcher(t)
	s := New(nil)
	RegisterDispatcher(s, d, nil, 0)
	before := d.Snapshot()
	for _, tc := range []struct {
		name   string
		params []any
		want   string
	}{
		{"set id 2^31", []any{json.Number("2147483648"), "sip:10.0.0.8"}, "set id 2147483648 is out of range 0-2147483647"},
		{"negative set id", []any{-1, "sip:10.0.0.8"}, "set id -1 is out of range 0-2147483647"},
		{"negative priority", []any{1, "sip:10.0.0.8", 0, -5}, "priority -5 is out of range 0-2147483647"},
		{"priority 2^31", []any{1, "sip:10.0.0.8", 0, json.Number("2147483648")}, "priority 2147483648 is out of range"},
		{"10 MB attrs", []any{1, "sip:10.0.0.8", 0, 0, "duid=" + strings.Repeat("x", 10<<20)}, "attrs are 10485765 bytes long; the limit is 4096"},
		{"attrs with a blank", []any{1, "sip:10.0.0.8", 0, 0, "duid=a weight=5"}, "weight=5\\\" hold a blank"},
		{"uri with a blank", []any{1, "sip:10.0.0.8 x"}, "x\\\" holds a blank"},
		{"uri with a NUL", []any{1, "sip:10.0.0.8\x00"}, `holds the control character 0x00`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rpcCall(t, s, "dispatcher.add", tc.params...)
			if !strings.Contains(got, `"message":"Adding dispatcher dst failed"`) || !strings.Contains(got, tc.want) {
				t.Errorf("got %.300s\nwant a failure containing %q", got, tc.want)
			}
			if d.Snapshot() != before {
				t.Error("the snapshot changed")
			}
		})
	}
}

// dispatcher.list shows a cc destination's current rweight, which a
// snapshot carries only later (dispatch's congestion.go): here never, as
// 10.0.0.1 has no cc. 10.0.0.2: nine samples of 10 ms then one of 33 ms:
// AVG 12.3, EST 10×0.1 + 33×0.9 = 30.7, congestion 18, rweight 50 − 18.
func TestDispatcherListCCRWeight(t *testing.T) {
	entries := []dispatch.Entry{
		{SetID: 1, URI: "sip:10.0.0.1", Attrs: "weight=50;rweight=50", Source: "test:1"},
		{SetID: 1, URI: "sip:10.0.0.2", Flags: dispatch.FlagProbing, Attrs: "cc=1;weight=50;rweight=50", Source: "test:2"},
	}
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{LatencyStats: true, LatencyAlpha: dispatch.DefaultLatencyAlpha})
	if err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(snap)
	for range 9 {
		d.ProbeLatency(1, "sip:10.0.0.2", 200, 10*time.Millisecond)
	}
	d.ProbeLatency(1, "sip:10.0.0.2", 200, 33*time.Millisecond)
	s := New(nil)
	RegisterDispatcher(s, d, nil, 0)
	got := rpcCall(t, s, "dispatcher.list")
	want := `"BODY":"cc=1;weight=50;rweight=50","DUID":null,"PROBING_COUNT":0,"MAXLOAD":0,"WEIGHT":50,"RWEIGHT":32,`
	if !strings.Contains(got, want) {
		t.Errorf("\n got %s\nwant it to contain %s", got, want)
	}
}
