package agent

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/config"
)

// The config the tests write loads with the agent's own loader.
func TestConfigLoads(t *testing.T) {
	cfg := Config{
		Listeners: []Listener{{Name: "edge", Address: netip.MustParseAddrPort("127.0.0.1:5060")}},
		Rules:     []Rule{{Listener: "edge", Set: 1, Algorithm: 8, RecordRoute: true, Mode: "failover"}},
		Dests: []Dest{
			{Set: 1, URI: "sip:127.0.0.1:5080", Priority: 10},
			{Set: 1, URI: "sip:127.0.0.1:5082", Flags: 1, Attrs: "duid=b"},
		},
		FailoverTimeout: 2 * time.Second,
		XDP:             &XDP{Interfaces: []string{"cl0", "be1"}, Mode: "native"},
		DialogKeys:      [][2]string{{"enabled", "true"}, {"data", `"$rU"`}, {"tags", `[{tag: vip, listener: edge}]`}},
	}
	dir := t.TempDir()
	p, err := cfg.Write(dir, dir+"/sipedge.sock")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatalf("config.Load: %v\n%s", err, cfg.YAML(dir+"/sipedge.sock", "dispatcher.list"))
	}
	if r, ok := c.RuleFor("edge"); !ok || r.Algorithm != 8 || !r.RecordRoute || r.Mode != config.ModeFailover {
		t.Errorf("rule = %+v", r)
	}
	if c.Failover.Timeout != 2*time.Second || c.Log.Level != "debug" {
		t.Errorf("failover %v, log %q", c.Failover.Timeout, c.Log.Level)
	}
	if got := strings.Join(c.XDP.Interfaces, ","); got != "cl0,be1" || c.XDP.Mode != "native" {
		t.Errorf("xdp = %+v, want interfaces cl0,be1 and mode native", c.XDP)
	}
	if d := c.Dialogs; !d.Enabled || d.Data != "$rU" || len(d.Tags) != 1 {
		t.Errorf("dialogs = %+v, want enabled, data $rU and one tag rule", d)
	}
	entries, err := c.ReadDispatcherList()
	if err != nil || len(entries) != 2 {
		t.Fatalf("dispatcher list: %v, %d entries", err, len(entries))
	}
}

func TestDecodeResult(t *testing.T) {
	for _, tc := range []struct {
		name, out, want string
		wantErr         bool
	}{
		{"bare object", "{\n  \"hashid\": 7167810,\n  \"slot\": 10\n}\n", `{"hashid":7167810,"slot":10}`, false},
		{"envelope", `{"jsonrpc":"2.0","result":"sipedge 0.1","id":1}`, `"sipedge 0.1"`, false},
		{"envelope error", `{"jsonrpc":"2.0","error":{"code":500,"message":"x"},"id":1}`, "", true},
		{"not json", "oops", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeResult([]byte(tc.out))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr {
				return
			}
			var a, b any
			json.Unmarshal(got, &a)
			json.Unmarshal([]byte(tc.want), &b)
			if ja, jb := mustJSON(a), mustJSON(b); ja != jb {
				t.Errorf("got %s, want %s", ja, jb)
			}
		})
	}
}

func TestDestFlags(t *testing.T) {
	raw := json.RawMessage(`{"NRSETS":1,"RECORDS":[{"SET":{"ID":1,"TARGETS":[
		{"DEST":{"URI":"sip:127.0.0.1:5080","FLAGS":"AP","PRIORITY":10}},
		{"DEST":{"URI":"sip:127.0.0.1:5082","FLAGS":"IX","PRIORITY":0}}]}}]}`)
	got, err := DestFlags(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got["1 sip:127.0.0.1:5080"] != "AP" || got["1 sip:127.0.0.1:5082"] != "IX" || len(got) != 2 {
		t.Errorf("got %v", got)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
