package config

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
)

// TestLoadBad asserts every error of every bad config file, in order.
func TestLoadBad(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{
			name: "unknown_keys.yaml",
			want: []string{
				`unknown_keys.yaml:4: listeners[0]: unknown key "adverstise" (did you mean "advertise"?)`,
				`unknown_keys.yaml:9: dispatcher: unknown key "ds_ping_intervall" (did you mean "ds_ping_interval"?)`,
				`unknown_keys.yaml:11: dispatcher.hash_pvar: repeated key (first at line 10)`,
				`unknown_keys.yaml:14: xdp: unknown key "iface"`,
				`unknown_keys.yaml:15: config: unknown key "rule" (did you mean "rules"?)`,
			},
		},
		{
			name: "listeners.yaml",
			want: []string{
				`listeners.yaml:4: listeners[1].name: duplicate listener name "edge" (first at line 2)`,
				`listeners.yaml:5: listeners[1].address: duplicate listener address 127.0.0.1:5060 (first at line 3)`,
				`listeners.yaml:7: listeners[2].address: proto "tcp" is not supported yet (only udp)`,
				`listeners.yaml:9: listeners[3].address: "udp:127.0.0.1" has no port: want proto:IP:PORT such as udp:127.0.0.1:5060`,
				`listeners.yaml:11: listeners[4].address: "udp:localhost:5060": "localhost:5060" is not IP:PORT (an IP literal, IPv6 in brackets)`,
				`listeners.yaml:13: listeners[5].address: "127.0.0.1:5062": want proto:IP:PORT such as udp:127.0.0.1:5060`,
				`listeners.yaml:15: listeners[6].address: 0.0.0.0:5064 is a wildcard address: listen on one IP, or set advertise`,
				`listeners.yaml:18: listeners[7].advertise: "203.0.113.10" has no port: want host:port such as 203.0.113.10:5060`,
				`listeners.yaml:19: listeners[8].name: required`,
				`listeners.yaml:20: listeners[9].name: "bad name": use letters, digits, '_', '.' and '-' (at most 64, starting with a letter or digit)`,
				`listeners.yaml:22: listeners[9].advertise: "[example.com]:5060": "example.com" in brackets is not an IPv6 address`,
				`listeners.yaml:25: listeners[10].advertise: "203.0.113:5060": "203.0.113" is neither an IP address nor a host name`,
			},
		},
		{
			name: "rules.yaml",
			want: []string{
				`rules.yaml:6: listeners[2]: listener "c" has no rule`,
				`rules.yaml:11: rules[0].algorithm: algorithm 10 keeps its calls in a table that dispatcher.ds_hash_size turns on (e.g. 10); it is 0`,
				`rules.yaml:12: rules[1].listener: listener "a" already has a rule (line 9)`,
				`rules.yaml:14: rules[2].listener: no listener named "edge"`,
				`rules.yaml:16: rules[3].set: required: the dispatcher set id`,
				`rules.yaml:17: rules[3].algorithm: unknown algorithm 42 (supported: 0-11, 13, 14)`,
				`rules.yaml:18: rules[3].limit: must be 0 (no limit) or more, got -1`,
				`rules.yaml:19: rules[3].mode: want stateless or failover, got "stateful"`,
				`rules.yaml:20: rules[4].listener: required`,
				`rules.yaml:21: rules[4].algorithm: algorithm 7 hashes dispatcher.hash_pvar, which is not set`,
			},
		},
		{
			name: "types.yaml",
			want: []string{
				`types.yaml:1: listeners: want a list, got a mapping`,
				`types.yaml:5: rules[0].set: want an integer, got "one"`,
				`types.yaml:6: rules[0].algorithm: want an integer, got "0"`,
				`types.yaml:7: rules[0].record_route: want true or false, got "yes"`,
				`types.yaml:8: rules[0].mode: want a single value, got a list`,
				`types.yaml:9: rules[1]: want a mapping, got "just a string"`,
				`types.yaml:11: dispatcher.reload_delta: want a duration such as 5s or 1m30s, or whole seconds, got "5 sec"`,
				`types.yaml:12: dispatcher.ds_ping_interval: want a duration such as 5s or 1m30s, or whole seconds, got "1.5"`,
				`types.yaml:13: dispatcher.use_default: want 0 or 1, got "2"`,
				`types.yaml:14: dispatcher.flags: want a single value, got a mapping`,
				`types.yaml:16: failover.timeout: duration "-5s" is negative`,
				`types.yaml:17: control: want a mapping, got "/run/sipedge.sock"`,
			},
		},
		{
			name: "dispatcher.yaml",
			want: []string{
				`dispatcher.yaml:8: dispatcher.list_file: must not be empty`,
				`dispatcher.yaml:9: dispatcher.flags: 4 has unknown bits (1 = hash the user only, 2 = failover)`,
				`dispatcher.yaml:10: dispatcher.hash_pvar: "$avp(i:273)": unknown variable $avp (allowed: $ci $fu $fU $fd $ft $tu $tU $td $tt $ru $rU $rd $rm $si $sp $du $hdr(Name))`,
				`dispatcher.yaml:11: dispatcher.no_destination_code: want 503 or 404, got 500`,
				`dispatcher.yaml:12: dispatcher.ds_ping_method: ACK gets no reply of its own: it cannot probe`,
				`dispatcher.yaml:13: dispatcher.ds_ping_from: "dispatcher@localhost" is not a sip: or sips: URI`,
				`dispatcher.yaml:14: dispatcher.ds_probing_threshold: must be 1 or more, got 0`,
				`dispatcher.yaml:15: dispatcher.ds_inactive_threshold: must be 1 or more, got -1`,
				`dispatcher.yaml:16: dispatcher.ds_ping_reply_codes: "class=9": class 9 is not 1-6`,
				`dispatcher.yaml:17: dispatcher.ds_probing_mode: want 0, 1, 2 or 3, got 4`,
				`dispatcher.yaml:18: dispatcher.ds_latency_estimator_alpha: want 0 to 1000 (per mille), got 1001`,
				`dispatcher.yaml:19: dispatcher.ds_hash_fallback: hash fallback "even": want next or spread`,
				`dispatcher.yaml:20: dispatcher.ds_hash_size: want 0 (call load off) to 30, got 31`,
				`dispatcher.yaml:21: dispatcher.ds_hash_expire: 0s is below 1s (calls expire in whole seconds)`,
				`dispatcher.yaml:22: dispatcher.ds_hash_initexpire: 500ms is below 1s (calls expire in whole seconds)`,
				`dispatcher.yaml:23: dispatcher.ds_hash_check_interval: 10ms is below 100ms`,
			},
		},
		{
			name: "ping_timeout.yaml",
			want: []string{
				`ping_timeout.yaml:9: dispatcher.ds_ping_timeout: 5ms is below 10ms (the probe scheduler's tick is 5 ms)`,
			},
		},
		{
			name: "ping_timeout_long.yaml",
			want: []string{
				`ping_timeout_long.yaml:9: dispatcher.ds_ping_timeout: 2s is longer than ds_ping_interval 1s: a probe must end before the next one starts`,
			},
		},
		{
			name: "misc.yaml",
			want: []string{
				`misc.yaml:8: failover.timeout: must be more than 0`,
				`misc.yaml:10: control.socket: path is 131 bytes long; a unix socket path holds at most 107`,
				`misc.yaml:11: control.http: "0.0.0.0:8080" is not a loopback address: JSON-RPC over HTTP listens on 127.0.0.1, ::1 or localhost only`,
				`misc.yaml:11: control.http_token_file: required with control.http: callers send the token in the file as a bearer token (or write control.http_auth: none to let any local user in)`,
				`misc.yaml:13: log.level: want debug, info, warn or error, got "verbose"`,
				`misc.yaml:14: log.format: want text or json, got "xml"`,
				`misc.yaml:16: xdp.interface: required when xdp.mode is native`,
			},
		},
		{
			name: "limits.yaml",
			want: []string{
				`limits.yaml:8: failover.max_transactions: want 1 to 1048576, got 0`,
				`limits.yaml:9: failover.max_transaction_bytes: want 1048576 to 17179869184 bytes, got 4096`,
				`limits.yaml:11: udp.receive_buffer: want 65536 to 1073741824 bytes, got 1024`,
			},
		},
		{
			name: "limits_high.yaml",
			want: []string{
				`limits_high.yaml:8: failover.max_transactions: want 1 to 1048576, got 2000000`,
				`limits_high.yaml:9: failover.max_transaction_bytes: want 1048576 to 17179869184 bytes, got 17179869185`,
				`limits_high.yaml:11: udp.receive_buffer: want 65536 to 1073741824 bytes, got 2147483648`,
			},
		},
		{
			name: "xdp.yaml",
			want: []string{
				`xdp.yaml:8: xdp.interface: "a/b" is not a network interface name`,
				`xdp.yaml:9: xdp.mode: want auto, native, generic or off, got "fast"`,
			},
		},
		{
			name: "keepalive.yaml",
			want: []string{
				`keepalive.yaml:8: keepalive.destination: "sips:10.0.0.1": sips (TLS) cannot be probed: probes go over UDP`,
				`keepalive.yaml:8: keepalive.destination: "sip:10.0.0.2;transport=tcp": only UDP destinations can be probed`,
				`keepalive.yaml:8: keepalive.destination: "sip:10.0.0.3" is listed twice`,
				`keepalive.yaml:13: keepalive.ping_interval: 5ms is below 10ms`,
				`keepalive.yaml:14: keepalive.delete_counter: want 0 (never) or more, got -1`,
				`keepalive.yaml:15: keepalive.ping_from: "keepalive@localhost" is not a sip: or sips: URI`,
			},
		},
		{
			name: "dialogs.yaml",
			want: []string{
				`dialogs.yaml:8: dialogs.enabled: want true or false, got "1"`,
				`dialogs.yaml:9: dialogs.init_lifetime: must be more than 0`,
				`dialogs.yaml:10: dialogs.timer_interval: 10ms is below 100ms`,
				`dialogs.yaml:11: dialogs.max_records: want 1 to 100000000, got 0`,
				`dialogs.yaml:12: dialogs.src: "$avp(x)": unknown variable $avp (allowed: $ci $fu $fU $fd $ft $tu $tU $td $tt $ru $rU $rd $rm $si $sp $du $hdr(Name))`,
				`dialogs.yaml:14: dialogs.data: "$hdr(X Y)": $hdr(X Y): "X Y" is not a header name`,
				`dialogs.yaml:16: dialogs.tags[0].tag: required: the tag to add or remove (text, or a template such as $si)`,
				`dialogs.yaml:19: dialogs.tags[1].action: want add or remove, got "drop"`,
				`dialogs.yaml:20: dialogs.tags[1].source: "10.0.0.1/8" has host bits set: write 10.0.0.0/8`,
				`dialogs.yaml:21: dialogs.tags[1].listener: no listener named "egde"`,
				`dialogs.yaml:22: dialogs.tags[1].set: set id -3 is out of range 0-2147483647`,
				`dialogs.yaml:23: dialogs.tags[1].header: "X Y" is not a header name`,
				`dialogs.yaml:24: dialogs.tags[1].value: error parsing regexp: missing closing ): ` + "`(`",
				`dialogs.yaml:26: dialogs.tags[2].value: needs header: the header whose value it matches`,
				`dialogs.yaml:29: dialogs.tags[3].value: error parsing regexp: missing closing ): ` + "`a(b`",
			},
		},
		{
			name: "dialog_limits.yaml",
			want: []string{
				`dialog_limits.yaml:9: dialogs.limits[0]: limits need dialogs.enabled: true (the live dialogs they cap are counted by dialog tracking)`,
				`dialog_limits.yaml:9: dialogs.limits[0].source: "10.0.0.1/8" has host bits set: write 10.0.0.0/8 (or any)`,
				`dialog_limits.yaml:11: dialogs.limits[1]: want exactly one of source, set or tag (what the limit counts), got 2`,
				`dialog_limits.yaml:13: dialogs.limits[1].max: -1 is below 0 (0: unlimited)`,
				`dialog_limits.yaml:14: dialogs.limits[1].code: want a final error code 400-699, got 200`,
				`dialog_limits.yaml:15: dialogs.limits[1].retry_after: want whole seconds, 0 or more, got 1.5s`,
				`dialog_limits.yaml:16: dialogs.limits[2]: want exactly one of source, set or tag (what the limit counts), got 0`,
				`dialog_limits.yaml:17: dialogs.limits[3].max: required: the most live dialogs allowed (0: unlimited)`,
				`dialog_limits.yaml:18: dialogs.limits[3].reason: a reason phrase is one line`,
				`dialog_limits.yaml:19: dialogs.limits[4]: unknown key "sources" (did you mean "source"?)`,
				`dialog_limits.yaml:19: dialogs.limits[4]: want exactly one of source, set or tag (what the limit counts), got 0`,
			},
		},
		{
			name: "syntax.yaml",
			want: []string{
				`syntax.yaml:2: found a tab character that violates indentation`,
			},
		},
		{
			name: "two_docs.yaml",
			want: []string{
				`two_docs.yaml:7: a second YAML document; the config is one document`,
			},
		},
		{
			name: "empty.yaml",
			want: []string{
				`empty.yaml:1: listeners: at least one listener is required`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadFS(os.DirFS("testdata/bad"), tc.name)
			if c != nil {
				t.Errorf("LoadFS returned a config along with the error")
			}
			assertErrors(t, err, tc.want)
		})
	}
}

// assertErrors checks that err joins exactly want, in order.
func assertErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want:\n%s", strings.Join(want, "\n"))
	}
	got := strings.Split(err.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		File: "testdata/good/full.yaml",
		Listeners: []Listener{
			{Name: "edge", Proto: "udp", Addr: netip.MustParseAddrPort("192.0.2.1:5060"), Advertise: "sip.example.com:5060", Line: 3},
			{Name: "edge6", Proto: "udp", Addr: netip.MustParseAddrPort("[2001:db8::1]:5070"), Advertise: "[2001:db8::2]:5070", Line: 6},
			{Name: "any", Proto: "udp", Addr: netip.MustParseAddrPort("0.0.0.0:5080"), Advertise: "203.0.113.10:5080", Line: 9},
		},
		Rules: []Rule{
			{Listener: "edge", Set: 1, Algorithm: 7, Limit: 2, RecordRoute: true, Mode: ModeFailover, Line: 13},
			{Listener: "edge6", Set: 2, Algorithm: 14, Mode: ModeStateless, Line: 19},
			{Listener: "any", Set: 0, Mode: ModeStateless, Line: 22},
		},
		Dispatcher: Dispatcher{
			ListFile:              "lists/full.list",
			Flags:                 3,
			UseDefault:            true,
			HashPVar:              "$fU@$(ci)",
			NoDestinationCode:     404,
			ReloadDelta:           30 * time.Second,
			PingInterval:          90 * time.Second,
			PingMethod:            "INFO",
			PingFrom:              "sip:proxy@sip.example.com",
			ProbingThreshold:      3,
			InactiveThreshold:     2,
			PingReplyCodes:        "class=2;code=403;code=488;class=3;",
			ProbingMode:           3,
			PingLatencyStats:      true,
			LatencyEstimatorAlpha: 900,
			HashFallback:          "spread",
			HashSize:              12,
			HashExpire:            time.Hour,
			HashInitExpire:        time.Minute,
			HashCheckInterval:     time.Minute,
		},
		Failover: Failover{Timeout: 1500 * time.Millisecond, MaxTransactions: 1000, MaxTransactionBytes: 32 << 20},
		UDP:      UDP{ReceiveBuffer: 4 << 20},
		Control:  Control{Socket: "", HTTP: "[::1]:8080", HTTPAuth: HTTPAuthToken, HTTPTokenFile: "/etc/sipedge/rpc.token"},
		Log:      Log{Level: "debug", Format: "json"},
		XDP:      XDP{Interfaces: []string{"eth0"}, Mode: "native"},
		Events:   Events{HookCommand: []string{"/usr/local/bin/sipedge-hook", "--quiet"}, HookTimeout: 2 * time.Second, HookFilter: []string{"dispatcher:"}},
		Keepalive: Keepalive{
			Destinations:  []string{"192.0.2.20", "sip:gw.example.com:5070"},
			PingInterval:  10 * time.Second,
			DeleteCounter: 0,
			PingFrom:      "sip:ka@sip.example.com",
		},
		Dialogs: Dialogs{
			Enabled:        true,
			InitLifetime:   240 * time.Second,
			ActiveLifetime: time.Hour,
			FinishLifetime: 20 * time.Second,
			TimerInterval:  time.Minute,
			MaxRecords:     50000,
			Src:            "$fu",
			Dst:            "$ru",
			Data:           "$hdr(X-Tenant)",
			Tags: []TagRule{
				{Tag: "$si", Action: TagAdd, Set: -1, Line: 83},
				{Tag: "trunk", Action: TagAdd, Source: "203.0.113.0/24", Listener: "edge", Set: 1, Line: 84},
				{Tag: "acme", Action: TagAdd, Set: -1, Header: "X-Tenant", Value: "^acme$", Line: 88},
				{Tag: "trunk", Action: TagRemove, Set: -1, Header: "X-No-Trunk", Line: 91},
			},
			Limits: []LimitRule{
				{Source: "any", Set: -1, Max: 10, Code: 503, Line: 95},
				{Source: "198.51.100.0/24", Set: -1, Max: 2, Code: 486, Reason: "Busy Here", RetryAfter: 30 * time.Second, Line: 97},
				{Set: 1, Max: 500, Code: 503, Line: 102},
				{Tag: "acme", Set: -1, Code: 503, Line: 104},
			},
		},
	}
	got := *c
	got.fsys, got.dir, got.lines, got.bad = nil, "", nil, nil
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", got, *want)
	}
	if r, ok := c.RuleFor("edge6"); !ok || r.Set != 2 {
		t.Errorf("RuleFor(edge6) = %+v, %v", r, ok)
	}
	if _, ok := c.RuleFor("nope"); ok {
		t.Errorf("RuleFor(nope) found a rule")
	}
	if got, want := c.ListPath(), "testdata/good/lists/full.list"; got != want {
		t.Errorf("ListPath = %q, want %q", got, want)
	}
	entries, err := c.ReadDispatcherList()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[1].Source != "full.list:3" || entries[1].Attrs != "duid=a" {
		t.Errorf("entries = %+v", entries)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}
}

func TestLoadDefaults(t *testing.T) {
	c, err := LoadFS(os.DirFS("testdata/good"), "minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Dispatcher.ListFile = "minimal.list"
	if !reflect.DeepEqual(c.Dispatcher, want.Dispatcher) || c.Failover != want.Failover || c.UDP != want.UDP ||
		c.Control != want.Control || c.Log != want.Log || !reflect.DeepEqual(c.XDP, want.XDP) || !reflect.DeepEqual(c.Events, want.Events) {
		t.Errorf("defaults not applied: %+v", c)
	}
	if got := c.Rules[0]; got.Mode != ModeStateless || got.Algorithm != 0 || got.Limit != 0 || got.RecordRoute {
		t.Errorf("rule defaults: %+v", got)
	}
	if got, want := c.Listeners[0].ADV(), "127.0.0.1:5060"; got != want {
		t.Errorf("ADV = %q, want %q", got, want)
	}
	if _, err := c.ReadDispatcherList(); err != nil {
		t.Error(err)
	}
}

func TestDefaultsValid(t *testing.T) {
	d := Defaults()
	d.Listeners = []Listener{{Name: "edge", Proto: "udp", Addr: netip.MustParseAddrPort("127.0.0.1:5060")}}
	d.Rules = []Rule{{Listener: "edge", Set: 1, Mode: ModeStateless}}
	if err := d.Validate(); err != nil {
		t.Errorf("Defaults plus a listener and a rule: %v", err)
	}
	// A Config built in code has no file and no lines.
	d.Rules[0].Algorithm = 12
	want := "rules[0].algorithm: algorithm 12 (parallel forking) is not supported yet"
	if err := d.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %s", err, want)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		err  string
	}{
		{name: "go syntax", in: "5s", want: 5 * time.Second},
		{name: "compound", in: "1m30s", want: 90 * time.Second},
		{name: "milliseconds", in: "250ms", want: 250 * time.Millisecond},
		{name: "whole seconds", in: "30", want: 30 * time.Second},
		{name: "zero", in: "0", want: 0},
		{name: "zero with unit", in: "0s", want: 0},
		{name: "float seconds", in: "1.5", err: `want a duration such as 5s or 1m30s, or whole seconds, got "1.5"`},
		{name: "negative", in: "-1s", err: `duration "-1s" is negative`},
		{name: "negative seconds", in: "-3", err: `want a duration such as 5s or 1m30s, or whole seconds, got "-3"`},
		{name: "words", in: "5 sec", err: `want a duration such as 5s or 1m30s, or whole seconds, got "5 sec"`},
		{name: "too long", in: "99999999999999999999", err: `duration "99999999999999999999" is too long`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDuration(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("parseDuration(%q) error = %v, want %s", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// yamlConfig is a valid config that tests append to.
const yamlConfig = `listeners:
  - name: edge
    address: udp:127.0.0.1:5060
rules:
  - listener: edge
    set: 1
`

func loadString(t *testing.T, text string) (*Config, error) {
	t.Helper()
	fsys := fstest.MapFS{"s.yaml": {Data: []byte(text)}}
	return LoadFS(fsys, "s.yaml")
}

func TestStrict(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown key two levels down",
			yaml: yamlConfig + "failover:\n  timeout: 5s\n  retries: 3\n",
			want: []string{`s.yaml:9: failover: unknown key "retries"`},
		},
		{
			name: "unknown key in a list item",
			yaml: "listeners:\n  - name: edge\n    address: udp:127.0.0.1:5060\nrules:\n  - listener: edge\n    set: 1\n    alg: 4\n",
			want: []string{`s.yaml:7: rules[0]: unknown key "alg"`},
		},
		{
			name: "unknown key in a flow mapping",
			yaml: yamlConfig + "log: {level: info, colour: true}\n",
			want: []string{`s.yaml:7: log: unknown key "colour"`},
		},
		{
			name: "repeated top-level key",
			yaml: yamlConfig + "log:\n  level: info\nlog:\n  level: debug\n",
			want: []string{`s.yaml:9: log: repeated key (first at line 7)`},
		},
		{
			name: "merge key",
			yaml: yamlConfig + "x: &d {level: info}\nlog:\n  <<: *d\n",
			want: []string{
				`s.yaml:7: config: unknown key "x"`,
				`s.yaml:9: log: merge keys and complex keys are not supported`,
			},
		},
		{
			name: "quoted integer",
			yaml: yamlConfig + "dispatcher:\n  no_destination_code: \"404\"\n",
			want: []string{`s.yaml:8: dispatcher.no_destination_code: want an integer, got "404"`},
		},
		{
			name: "errors come in line order",
			yaml: "log:\n  level: loud\nlisteners:\n  - name: edge\n    address: udp:127.0.0.1:5060\n    port: 5060\n",
			want: []string{
				`s.yaml:2: log.level: want debug, info, warn or error, got "loud"`,
				`s.yaml:4: listeners[0]: listener "edge" has no rule`,
				`s.yaml:6: listeners[0]: unknown key "port"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadString(t, tc.yaml)
			assertErrors(t, err, tc.want)
		})
	}
}

func TestLoadValues(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(*Config) bool
	}{
		{
			name:  "use_default true",
			yaml:  yamlConfig + "dispatcher:\n  use_default: true\n",
			check: func(c *Config) bool { return c.Dispatcher.UseDefault },
		},
		{
			name:  "use_default 1",
			yaml:  yamlConfig + "dispatcher:\n  use_default: 1\n",
			check: func(c *Config) bool { return c.Dispatcher.UseDefault },
		},
		{
			name:  "hex flags",
			yaml:  yamlConfig + "dispatcher:\n  flags: 0x2\n",
			check: func(c *Config) bool { return c.Dispatcher.Flags == 2 },
		},
		{
			name:  "null keeps the default",
			yaml:  yamlConfig + "dispatcher:\n  ds_ping_method:\n",
			check: func(c *Config) bool { return c.Dispatcher.PingMethod == "OPTIONS" },
		},
		{
			name:  "alias",
			yaml:  "listeners:\n  - name: edge\n    address: &a udp:127.0.0.1:5060\nrules:\n  - listener: edge\n    set: 1\nlog:\n  level: &l warn\n  format: json\n",
			check: func(c *Config) bool { return c.Log.Level == "warn" },
		},
		{
			name:  "IPv4-mapped address",
			yaml:  "listeners:\n  - name: edge\n    address: udp:[::ffff:127.0.0.1]:5060\nrules:\n  - {listener: edge, set: 1}\n",
			check: func(c *Config) bool { return c.Listeners[0].Addr == netip.MustParseAddrPort("127.0.0.1:5060") },
		},
		{
			name:  "advertise",
			yaml:  "listeners:\n  - name: edge\n    address: udp:127.0.0.1:5060\n    advertise: edge.example.com:5060\nrules:\n  - {listener: edge, set: 1}\n",
			check: func(c *Config) bool { return c.Listeners[0].ADV() == "edge.example.com:5060" },
		},
		{
			name:  "localhost http",
			yaml:  yamlConfig + "control:\n  http: localhost:8080\n  http_auth: none\n",
			check: func(c *Config) bool { return c.Control.HTTP == "localhost:8080" && c.Control.HTTPAuth == HTTPAuthNone },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadString(t, tc.yaml)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	_, err := loadString(t, yamlConfig+"log:\n  level: loud\n")
	var e *Error
	if !errors.As(err, &e) || e.File != "s.yaml" || e.Line != 8 {
		t.Errorf("errors.As(*Error) = %+v from %v", e, err)
	}
}

func TestCheckSets(t *testing.T) {
	c, err := loadString(t, yamlConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSets(func(set int) bool { return set == 1 }); err != nil {
		t.Errorf("CheckSets with set 1: %v", err)
	}
	want := []string{`s.yaml:6: rules[0].set: set 1 is not in dispatcher.list`}
	assertErrors(t, c.CheckSets(func(int) bool { return false }), want)
	c, err = loadString(t, yamlConfig+"dialogs:\n  tags:\n    - tag: a\n      set: 1\n    - tag: b\n      set: 7\n    - tag: c\n")
	if err != nil {
		t.Fatal(err)
	}
	want = []string{`s.yaml:12: dialogs.tags[1].set: set 7 is not in dispatcher.list`}
	assertErrors(t, c.CheckSets(func(set int) bool { return set == 1 }), want)
}

func TestListFileInFS(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/s.yaml":          {Data: []byte(yamlConfig + "dispatcher:\n  list_file: lists/ds.list\n")},
		"etc/lists/ds.list":   {Data: []byte("1 sip:127.0.0.1:5080\n")},
		"etc/abs.yaml":        {Data: []byte(yamlConfig + "dispatcher:\n  list_file: /etc/ds.list\n")},
		"etc/missing.yaml":    {Data: []byte(yamlConfig + "dispatcher:\n  list_file: nope.list\n")},
		"etc/lists/empty.txt": {Data: nil},
	}
	c, err := LoadFS(fsys, "etc/s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := c.ReadDispatcherList()
	if err != nil || len(entries) != 1 || entries[0].Source != "ds.list:1" {
		t.Errorf("ReadDispatcherList = %+v, %v", entries, err)
	}
	for _, name := range []string{"etc/abs.yaml", "etc/missing.yaml"} {
		c, err := LoadFS(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadDispatcherList(); err == nil || !strings.HasPrefix(err.Error(), "read dispatcher list: ") {
			t.Errorf("%s: ReadDispatcherList error = %v", name, err)
		}
	}
}

func TestXDPInterfaces(t *testing.T) {
	base := "listeners:\n  - name: edge\n    address: udp:127.0.0.1:5060\nrules:\n  - listener: edge\n    set: 1\nxdp:\n  mode: native\n"
	tests := []struct {
		name    string
		yaml    string
		want    []string
		wantErr string
	}{
		{name: "one name", yaml: base + "  interface: eth0\n", want: []string{"eth0"}},
		{name: "a list", yaml: base + "  interface: [cl0, be1, be2]\n", want: []string{"cl0", "be1", "be2"}},
		{name: "twice", yaml: base + "  interface: [cl0, cl0]\n", wantErr: `"cl0" is given twice`},
		{name: "missing", yaml: base, wantErr: "xdp.interface: required when xdp.mode is native"},
		{name: "a mapping", yaml: base + "  interface: {a: b}\n", wantErr: "want a name or a list of names"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.XDP.Interfaces, tc.want) {
				t.Errorf("interfaces %q, want %q", c.XDP.Interfaces, tc.want)
			}
		})
	}
}

// TestPingMethodInvite: INVITE is refused as ds_ping_method at load (and
// so by `sipedge check`), as the probe engine refuses it: before, the
// config passed and the agent failed at start.
func TestPingMethodInvite(t *testing.T) {
	_, err := loadString(t, yamlConfig+"dispatcher:\n  ds_ping_method: INVITE\n")
	if err == nil || !strings.Contains(err.Error(), "dispatcher.ds_ping_method: INVITE would need an ACK") {
		t.Errorf("ds_ping_method INVITE: err = %v", err)
	}
}

func TestCheckCallLoadSets(t *testing.T) {
	c, err := loadString(t, yamlConfig+"    algorithm: 10\ndispatcher:\n  ds_hash_size: 4\n")
	if err != nil {
		t.Fatal(err)
	}
	build := func(attrs ...string) *dispatch.Snapshot {
		var e []dispatch.Entry
		for i, a := range attrs {
			e = append(e, dispatch.Entry{SetID: 1, URI: fmt.Sprintf("sip:10.0.0.%d", i+1), Priority: 9 - i, Attrs: a})
		}
		s, err := dispatch.Build(context.Background(), e, dispatch.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := c.CheckCallLoadSets(build("duid=a", "duid=b;maxload=2")); err != nil {
		t.Errorf("duids a and b: %v", err)
	}
	assertErrors(t, c.CheckCallLoadSets(build("duid=a", "weight=5", "duid=a")), []string{
		`s.yaml:7: rules[0].algorithm: algorithm 10 needs a duid on every destination of set 1; sip:10.0.0.2 has none`,
		`s.yaml:7: rules[0].algorithm: algorithm 10 keeps loads by duid; sip:10.0.0.1 and sip:10.0.0.3 of set 1 both have duid "a"`,
	})
}
