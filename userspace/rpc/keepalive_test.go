package rpc

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/keepalive"
)

// nullProber accepts every probe target; tests feed results by key.
type nullProber struct{ keys map[string]string } // uri -> key

func (n nullProber) Set(key string, p keepalive.Probe) error { n.keys[p.URI] = key; return nil }
func (n nullProber) Remove(string)                           {}

// TestKeepaliveRPC: keepalive.list is a JSON array, [] when empty
// (kamailio#2618), with Kamailio's keys; add, del, get and flush answer
// Kamailio's texts and faults.
func TestKeepaliveRPC(t *testing.T) {
	now := time.Date(2026, time.March, 4, 5, 6, 7, 0, time.Local)
	pr := nullProber{keys: map[string]string{}}
	m, err := keepalive.New(keepalive.Options{Prober: pr, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil)
	RegisterKeepalive(s, m)
	call := func(req string) string {
		t.Helper()
		return string(s.handleMessage(context.Background(), []byte(req)))
	}
	const list = `{"jsonrpc":"2.0","method":"keepalive.list","id":1}`

	if got, want := call(list), `{"jsonrpc":"2.0","result":[],"id":1}`; got != want {
		t.Fatalf("empty list:\n got %s\nwant %s", got, want)
	}
	if got, want := call(`{"jsonrpc":"2.0","method":"keepalive.add","params":["10.0.0.1:5080","config"],"id":1}`),
		`{"jsonrpc":"2.0","result":"Ok. Destination added.","id":1}`; got != want {
		t.Fatalf("add:\n got %s\nwant %s", got, want)
	}
	if got := call(`{"jsonrpc":"2.0","method":"keepalive.add","params":["sip:10.0.0.1:5080","config"],"id":1}`); !strings.Contains(got, `"code":500,"message":"couldn't add data to list"`) {
		t.Errorf("second add: %s", got)
	}
	if got := call(`{"jsonrpc":"2.0","method":"keepalive.add","params":["sips:10.0.0.1","config"],"id":1}`); !strings.Contains(got, `"code":500,"message":"couldn't add data to list","data":"add keepalive destination \"sips:10.0.0.1\" for config: uri \"sips:10.0.0.1\": sips (TLS) cannot be probed`) {
		t.Errorf("add sips: %s", got)
	}
	want := `{"jsonrpc":"2.0","result":[{"uri":"sip:10.0.0.1:5080","owner":"config","last checked":"never","last up":"never","last down":"never","state":0,"failures":0,"address":"10.0.0.1:5080"}],"id":1}`
	if got := call(list); got != want {
		t.Errorf("list:\n got %s\nwant %s", got, want)
	}
	m.Result(pr.keys["sip:10.0.0.1:5080"], 1, 200, "")
	want = `{"jsonrpc":"2.0","result":[{"uri":"sip:10.0.0.1:5080","owner":"config","last checked":"Wed Mar  4 05:06:07 2026","last up":"Wed Mar  4 05:06:07 2026","last down":"never","state":1,"failures":0,"address":"10.0.0.1:5080"}],"id":1}`
	if got := call(list); got != want {
		t.Errorf("list after a 200:\n got %s\nwant %s", got, want)
	}
	if got, want := call(`{"jsonrpc":"2.0","method":"keepalive.get","params":["10.0.0.1:5080","config"],"id":1}`),
		`{"jsonrpc":"2.0","result":{"uri":"sip:10.0.0.1:5080","owner":"config","state":1},"id":1}`; got != want {
		t.Errorf("get:\n got %s\nwant %s", got, want)
	}
	if got := call(`{"jsonrpc":"2.0","method":"keepalive.get","params":["10.0.0.1:5080","other"],"id":1}`); !strings.Contains(got, `"code":500,"message":"couldn't get data from list"`) {
		t.Errorf("get for another owner: %s", got)
	}
	if got := call(`{"jsonrpc":"2.0","method":"keepalive.get","params":["10.0.0.1:5080"],"id":1}`); !strings.Contains(got, `"code":-32602`) {
		t.Errorf("get without owner: %s", got)
	}
	if got := call(`{"jsonrpc":"2.0","method":"keepalive.del","params":["10.0.0.1:5080","other"],"id":1}`); !strings.Contains(got, `"code":500,"message":"couldn't delete data from list"`) {
		t.Errorf("del by another owner: %s", got)
	}
	if got, want := call(`{"jsonrpc":"2.0","method":"keepalive.del","params":["SIP:10.0.0.1:5080","config"],"id":1}`),
		`{"jsonrpc":"2.0","result":"Ok. Destination removed.","id":1}`; got != want {
		t.Errorf("del:\n got %s\nwant %s", got, want)
	}
	if err := m.Add("sip:10.0.0.2", "a", nil); err != nil {
		t.Fatal(err)
	}
	if got, want := call(`{"jsonrpc":"2.0","method":"keepalive.flush","id":1}`), `{"jsonrpc":"2.0","result":"Ok. Destination list flushed.","id":1}`; got != want {
		t.Errorf("flush:\n got %s\nwant %s", got, want)
	}
	if got, want := call(list), `{"jsonrpc":"2.0","result":[],"id":1}`; got != want {
		t.Errorf("list after flush:\n got %s\nwant %s", got, want)
	}
}
