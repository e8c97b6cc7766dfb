package rpc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dialog"
)

// dlgsT0 is when the test calls start: 1,700,000,000 Unix seconds.
var dlgsT0 = time.Unix(1_700_000_000, 0)

// dlgsCall is one call fed to a real tracker: its INVITE's fields and the
// messages that follow it, each a second apart.
type dlgsCall struct {
	callID, src, dst, data string
	tags                   []string
	then                   []dialog.Message // Method, Request, Status, ToTag; the rest is filled in
}

func feedDlgs(tr *dialog.Tracker, calls []dlgsCall) {
	for _, c := range calls {
		tr.Observe([]dialog.Message{{
			Time: dlgsT0, Request: true, Method: dialog.Invite,
			CallID: c.callID, FromTag: "ft-" + c.callID, Branch: "z9hG4bK-" + c.callID,
			Src: c.src, Dst: c.dst, Data: c.data, AddTags: c.tags,
		}})
		for k, m := range c.then {
			m.Time = dlgsT0.Add(time.Duration(k+1) * time.Second)
			m.CallID = c.callID
			tr.Observe([]dialog.Message{m})
		}
	}
}

var (
	ring   = dialog.Message{Method: dialog.Invite, Status: 180}
	answer = dialog.Message{Method: dialog.Invite, Status: 200, ToTag: "tt"}
	busy   = dialog.Message{Method: dialog.Invite, Status: 486}
	ack    = dialog.Message{Request: true, Method: dialog.Ack}
	bye    = dialog.Message{Request: true, Method: dialog.Bye}
)

// dlgsServer is an RPC server with the dlgs methods over a real tracker
// holding four calls, one per state of interest: a (CONFIRMED, tags vip
// and t1), b (PROGRESS, tag t1), c (TERMINATED, tag vip, so not counted),
// d (NOTANSWERED).
func dlgsServer(t *testing.T) (*dialog.Tracker, func(req string) string) {
	t.Helper()
	tr := dialog.New(dialog.Config{})
	feedDlgs(tr, []dlgsCall{
		{callID: "a", src: "sip:alice@example.com", dst: "sip:10.0.0.1:5060", data: "acme", tags: []string{"vip", "t1"}, then: []dialog.Message{ring, answer, ack}},
		{callID: "b", src: "sip:alice@example.com", dst: "sip:10.0.0.2:5060", data: "acme", tags: []string{"t1"}, then: []dialog.Message{ring}},
		{callID: "c", src: "sip:bob@example.org", dst: "sip:10.0.0.1:5060", data: "other", tags: []string{"vip"}, then: []dialog.Message{answer, ack, bye}},
		{callID: "d", src: "sip:carol@example.org", dst: "sip:10.0.0.2:5060", then: []dialog.Message{ring, busy}},
	})
	s := New(nil)
	RegisterDialogs(s, tr)
	return tr, func(req string) string {
		t.Helper()
		return string(s.handleMessage(context.Background(), []byte(req)))
	}
}

func dlgsReq(method string, params ...string) string {
	if len(params) == 0 {
		return fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"id":1}`, method)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"params":[%s],"id":1}`, method, strings.Join(params, ","))
}

// dlgsItem is the JSON of one dlgs.list record of dlgsServer's calls,
// with its running count.
func dlgsItem(tr *dialog.Tracker, count int, callID string) string {
	var ruid string
	for _, r := range tr.List(0) {
		if r.CallID == callID {
			ruid = r.RUID
		}
	}
	ts := dlgsT0.Unix()
	return map[string]string{
		"a": fmt.Sprintf(`{"count":%d,"src":"sip:alice@example.com","dst":"sip:10.0.0.1:5060","data":"acme","ruid":%q,"callid":"a","branch":"z9hG4bK-a","ftag":"ft-a","ttag":"tt","ts_init":%d,"ts_answer":%d,"state":3,"tags":["vip","t1"]}`, count, ruid, ts, ts+2),
		"b": fmt.Sprintf(`{"count":%d,"src":"sip:alice@example.com","dst":"sip:10.0.0.2:5060","data":"acme","ruid":%q,"callid":"b","branch":"z9hG4bK-b","ftag":"ft-b","ttag":"","ts_init":%d,"ts_answer":0,"state":1,"tags":["t1"]}`, count, ruid, ts),
		"c": fmt.Sprintf(`{"count":%d,"src":"sip:bob@example.org","dst":"sip:10.0.0.1:5060","data":"other","ruid":%q,"callid":"c","branch":"z9hG4bK-c","ftag":"ft-c","ttag":"tt","ts_init":%d,"ts_answer":%d,"state":4,"tags":["vip"]}`, count, ruid, ts, ts+1),
		"d": fmt.Sprintf(`{"count":%d,"src":"sip:carol@example.org","dst":"sip:10.0.0.2:5060","data":"","ruid":%q,"callid":"d","branch":"z9hG4bK-d","ftag":"ft-d","ttag":"","ts_init":%d,"ts_answer":0,"state":5,"tags":[]}`, count, ruid, ts),
	}[callID]
}

func dlgsResult(items ...string) string {
	return `{"jsonrpc":"2.0","result":[` + strings.Join(items, ",") + `],"id":1}`
}

// TestDlgsList: dlgs.list and dlgs.briefing give every record, finished
// ones included, with Kamailio's keys in Kamailio's order (master's, with
// branch), a running count from 1, ts_init and ts_answer in Unix seconds
// (0 before an answer), the state number, and sipedge's tags ([] when
// none); [] when there is no record.
func TestDlgsList(t *testing.T) {
	tr, call := dlgsServer(t)
	want := dlgsResult(dlgsItem(tr, 1, "a"), dlgsItem(tr, 2, "b"), dlgsItem(tr, 3, "c"), dlgsItem(tr, 4, "d"))
	if got := call(dlgsReq("dlgs.list")); got != want {
		t.Errorf("dlgs.list:\n got %s\nwant %s", got, want)
	}
	want = dlgsResult(
		`{"count":1,"src":"sip:alice@example.com","dst":"sip:10.0.0.1:5060","callid":"a","branch":"z9hG4bK-a","state":3}`,
		`{"count":2,"src":"sip:alice@example.com","dst":"sip:10.0.0.2:5060","callid":"b","branch":"z9hG4bK-b","state":1}`,
		`{"count":3,"src":"sip:bob@example.org","dst":"sip:10.0.0.1:5060","callid":"c","branch":"z9hG4bK-c","state":4}`,
		`{"count":4,"src":"sip:carol@example.org","dst":"sip:10.0.0.2:5060","callid":"d","branch":"z9hG4bK-d","state":5}`,
	)
	if got := call(dlgsReq("dlgs.briefing")); got != want {
		t.Errorf("dlgs.briefing:\n got %s\nwant %s", got, want)
	}

	empty := New(nil)
	RegisterDialogs(empty, dialog.New(dialog.Config{}))
	for _, m := range []string{"dlgs.list", "dlgs.briefing"} {
		if got := string(empty.handleMessage(context.Background(), []byte(dlgsReq(m)))); got != dlgsResult() {
			t.Errorf("%s of an empty tracker: %s, want []", m, got)
		}
	}
}

// TestDlgsGet: dlgs.get gives the first matching record and dlgs.getall
// every one, finished ones included, numbered from 1 among the matches;
// "any" compares src (Kamailio); every operator works, re included
// (Kamailio 5.6's never matches) and case-insensitive.
func TestDlgsGet(t *testing.T) {
	tr, call := dlgsServer(t)
	for _, tc := range []struct {
		name, method, field, op, value string
		want                           []string // Call-IDs, in order
	}{
		{"get src eq", "dlgs.get", "src", "eq", "sip:alice@example.com", []string{"a"}},
		{"getall src eq", "dlgs.getall", "src", "eq", "sip:alice@example.com", []string{"a", "b"}},
		{"getall any is src", "dlgs.getall", "any", "eq", "sip:bob@example.org", []string{"c"}},
		{"getall dst ne", "dlgs.getall", "dst", "ne", "sip:10.0.0.1:5060", []string{"b", "d"}},
		{"getall data sw", "dlgs.getall", "data", "sw", "ac", []string{"a", "b"}},
		{"getall src re", "dlgs.getall", "src", "re", "EXAMPLE\\.ORG$", []string{"c", "d"}},
		{"getall dst fm", "dlgs.getall", "dst", "fm", "sip:10.0.0.[2]:*", []string{"b", "d"}},
		{"get finished", "dlgs.get", "src", "eq", "sip:carol@example.org", []string{"d"}},
		{"getall none", "dlgs.getall", "src", "eq", "sip:nobody@example.com", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var items []string
			for i, id := range tc.want {
				items = append(items, dlgsItem(tr, i+1, id))
			}
			req := dlgsReq(tc.method, fmt.Sprintf("%q", tc.field), fmt.Sprintf("%q", tc.op), fmt.Sprintf("%q", tc.value))
			if got, want := call(req), dlgsResult(items...); got != want {
				t.Errorf("%s:\n got %s\nwant %s", req, got, want)
			}
		})
	}
}

// TestDlgsCount: dlgs.count and dlgs.tags_count count live dialogs only
// (not TERMINATED nor NOTANSWERED), the true number, 0 when none
// (Kamailio answers -1, and its counts answered 1 whatever the truth:
// kamailio#2568, kamailio#2884).
func TestDlgsCount(t *testing.T) {
	_, call := dlgsServer(t)
	for _, tc := range []struct {
		name   string
		params []string
		want   int
	}{
		{"any", []string{`"any"`, `"eq"`, `"*"`}, 2},
		{"src eq", []string{`"src"`, `"eq"`, `"sip:alice@example.com"`}, 2},
		{"src eq finished only", []string{`"src"`, `"eq"`, `"sip:bob@example.org"`}, 0},
		{"src ne", []string{`"src"`, `"ne"`, `"sip:alice@example.com"`}, 0},
		{"dst eq", []string{`"dst"`, `"eq"`, `"sip:10.0.0.1:5060"`}, 1},
		{"dst sw", []string{`"dst"`, `"sw"`, `"sip:10.0.0."`}, 2},
		{"dst re", []string{`"dst"`, `"re"`, `"10\\.0\\.0\\.2"`}, 1},
		{"dst fm", []string{`"dst"`, `"fm"`, `"*:5060"`}, 2},
		{"data eq", []string{`"data"`, `"eq"`, `"acme"`}, 2},
		{"data eq none", []string{`"data"`, `"eq"`, `"other"`}, 0},
		{"value a number", []string{`"data"`, `"eq"`, `123`}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := dlgsReq("dlgs.count", tc.params...)
			if got, want := call(req), fmt.Sprintf(`{"jsonrpc":"2.0","result":%d,"id":1}`, tc.want); got != want {
				t.Errorf("%s:\n got %s\nwant %s", req, got, want)
			}
		})
	}
	for tag, want := range map[string]int{"vip": 1, "t1": 2, "none": 0} {
		req := dlgsReq("dlgs.tags_count", fmt.Sprintf("%q", tag))
		if got, want := call(req), fmt.Sprintf(`{"jsonrpc":"2.0","result":%d,"id":1}`, want); got != want {
			t.Errorf("%s:\n got %s\nwant %s", req, got, want)
		}
	}
}

// TestDlgsStats: dlgs.stats gives final and active counts, each with
// Kamailio's keys and its misspelt "terminted" beside "terminated" (the
// same value), then the counters of what the tracker did not apply. The
// active gauges go down when records expire, and the expired ones are
// counted in final.
func TestDlgsStats(t *testing.T) {
	tr, call := dlgsServer(t)
	req := dlgsReq("dlgs.stats")
	want := `{"jsonrpc":"2.0","result":{` +
		`"final":{"init":0,"progress":0,"answered":0,"confirmed":0,"terminated":0,"terminted":0,"notanswered":0},` +
		`"active":{"init":0,"progress":1,"answered":0,"confirmed":1,"terminated":1,"terminted":1,"notanswered":1},` +
		`"unmatched":0,"ignored":0,"shed":0,"refused":0,"underflow":0},"id":1}`
	if got := call(req); got != want {
		t.Errorf("dlgs.stats:\n got %s\nwant %s", got, want)
	}
	// A BYE for no dialog is counted unmatched; an hour later every
	// record but the confirmed one has expired.
	tr.Observe([]dialog.Message{{Time: dlgsT0, Request: true, Method: dialog.Bye, CallID: "unknown"}})
	if n := tr.Expire(dlgsT0.Add(time.Hour)); n != 3 {
		t.Fatalf("Expire removed %d records, want 3", n)
	}
	want = `{"jsonrpc":"2.0","result":{` +
		`"final":{"init":0,"progress":1,"answered":0,"confirmed":0,"terminated":1,"terminted":1,"notanswered":1},` +
		`"active":{"init":0,"progress":0,"answered":0,"confirmed":1,"terminated":0,"terminted":0,"notanswered":0},` +
		`"unmatched":1,"ignored":0,"shed":0,"refused":0,"underflow":0},"id":1}`
	if got := call(req); got != want {
		t.Errorf("dlgs.stats after expiry:\n got %s\nwant %s", got, want)
	}
	if got, want := call(dlgsReq("dlgs.count", `"any"`, `"eq"`, `""`)), `{"jsonrpc":"2.0","result":1,"id":1}`; got != want {
		t.Errorf("dlgs.count any after expiry: %s, want %s", got, want)
	}
}

// TestDlgsFaults: bad calls answer Kamailio's code 500 and fault texts,
// with the reason in data; with tracking off every dlgs method answers a
// fault saying so, not "method not found".
func TestDlgsFaults(t *testing.T) {
	_, call := dlgsServer(t)
	for _, tc := range []struct {
		name, req, want string
	}{
		{"bad field", dlgsReq("dlgs.count", `"from"`, `"eq"`, `"x"`), `"code":500,"message":"Invalid Field","data":"dlgs query: unknown field \"from\" (want any, src, dst, data)"`},
		{"bad field get", dlgsReq("dlgs.get", `"from"`, `"eq"`, `"x"`), `"code":500,"message":"Invalid Field"`},
		{"bad op", dlgsReq("dlgs.getall", `"src"`, `"gt"`, `"x"`), `"code":500,"message":"Invalid Operator","data":"dlgs query: unknown operator \"gt\" (want eq, ne, re, sw, fm)"`},
		{"bad op count", dlgsReq("dlgs.count", `"src"`, `"lt"`, `"x"`), `"code":500,"message":"Invalid Operator"`},
		{"bad regex", dlgsReq("dlgs.count", `"src"`, `"re"`, `"("`), `"code":500,"message":"Invalid Matching Value","data":"dlgs query: bad regular expression \"(\": error parsing regexp: missing closing ): ` + "`(`" + `"`},
		{"bad glob", dlgsReq("dlgs.get", `"src"`, `"fm"`, `"[a"`), `"code":500,"message":"Invalid Matching Value","data":"dlgs query: bad glob \"[a\"`},
		{"two params", dlgsReq("dlgs.count", `"src"`, `"eq"`), `"code":500,"message":"Invalid Parameters","data":"want 3 parameters (field, op, value), got 2"`},
		{"no params get", dlgsReq("dlgs.get"), `"code":500,"message":"Invalid Parameters","data":"want 3 parameters (field, op, value), got 0"`},
		{"four params getall", dlgsReq("dlgs.getall", `"src"`, `"eq"`, `"x"`, `"y"`), `"code":500,"message":"Invalid Parameters"`},
		{"object param", dlgsReq("dlgs.count", `"src"`, `"eq"`, `{}`), `"code":500,"message":"Invalid Parameters","data":"param 3: want a string, got an object"`},
		{"tags_count no tag", dlgsReq("dlgs.tags_count"), `"code":500,"message":"Invalid Parameters","data":"want 1 parameter (tag), got 0"`},
		{"tags_count two", dlgsReq("dlgs.tags_count", `"a"`, `"b"`), `"code":500,"message":"Invalid Parameters","data":"want 1 parameter (tag), got 2"`},
		{"tags_count object", dlgsReq("dlgs.tags_count", `{}`), `"code":500,"message":"Invalid Parameters"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(tc.req); !strings.Contains(got, tc.want) || strings.Contains(got, `"result"`) {
				t.Errorf("%s:\n got %s\nwant an error with %s", tc.req, got, tc.want)
			}
		})
	}

	off := New(nil)
	RegisterDialogs(off, nil)
	for _, m := range []string{"dlgs.list", "dlgs.briefing", "dlgs.get", "dlgs.getall", "dlgs.stats", "dlgs.count", "dlgs.tags_count"} {
		want := `{"jsonrpc":"2.0","error":{"code":500,"message":"Dialog tracking is off","data":"dialogs.enabled is false in the config"},"id":1}`
		if got := string(off.handleMessage(context.Background(), []byte(dlgsReq(m, `"src"`, `"eq"`, `"x"`)))); got != want {
			t.Errorf("%s with tracking off:\n got %s\nwant %s", m, got, want)
		}
	}
}
