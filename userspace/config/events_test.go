package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEventsKeys: events.hook_command takes one word or a list (argv),
// hook_timeout a duration within bounds, hook_filter prefixes; bad values
// are errors naming the key.
func TestEventsKeys(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    Events
		wantErr string
	}{
		{name: "defaults", yaml: "", want: Events{HookTimeout: DefaultHookTimeout}},
		{name: "one word", yaml: "events:\n  hook_command: /bin/hook\n", want: Events{HookCommand: []string{"/bin/hook"}, HookTimeout: DefaultHookTimeout}},
		{name: "argv and filter", yaml: "events:\n  hook_command: [sh, -c, 'echo $SIPEDGE_EVENT']\n  hook_timeout: 500ms\n  hook_filter: [\"dispatcher:dst-down\", \"keepalive:\"]\n",
			want: Events{HookCommand: []string{"sh", "-c", "echo $SIPEDGE_EVENT"}, HookTimeout: 500 * time.Millisecond, HookFilter: []string{"dispatcher:dst-down", "keepalive:"}}},
		{name: "zero timeout", yaml: "events:\n  hook_timeout: 0\n", wantErr: "events.hook_timeout: want more than 0 and at most 1h0m0s, got 0s"},
		{name: "long timeout", yaml: "events:\n  hook_timeout: 2h\n", wantErr: "events.hook_timeout: want more than 0"},
		{name: "empty command", yaml: "events:\n  hook_command: ['', x]\n", wantErr: "events.hook_command: the command (first word) is empty"},
		{name: "empty filter", yaml: "events:\n  hook_filter: ['']\n", wantErr: "events.hook_filter: an empty prefix"},
		{name: "documented filters", yaml: "events:\n  hook_filter: [dispatcher:dst-down]\n", want: Events{HookTimeout: DefaultHookTimeout, HookFilter: []string{"dispatcher:dst-down"}}},
		{name: "quoted prefixes", yaml: "events:\n  hook_filter: [\"dispatcher:\", \"keepalive:\"]\n", want: Events{HookTimeout: DefaultHookTimeout, HookFilter: []string{"dispatcher:", "keepalive:"}}},
		{name: "unquoted prefixes", yaml: "events:\n  hook_filter: [dispatcher:, keepalive:]\n", want: Events{HookTimeout: DefaultHookTimeout, HookFilter: []string{"dispatcher:", "keepalive:"}}},
		{name: "a mapping", yaml: "events:\n  hook_command: {a: b}\n", wantErr: "events.hook_command: want a name or a list of names"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadString(t, yamlConfig+tc.yaml)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Events, tc.want) {
				t.Errorf("events %+v, want %+v", c.Events, tc.want)
			}
		})
	}
}

// TestEventsKeysLive: a reload applies the events keys without naming
// them as restart-only.
func TestEventsKeysLive(t *testing.T) {
	cur, err := loadString(t, yamlConfig)
	if err != nil {
		t.Fatal(err)
	}
	next, err := loadString(t, yamlConfig+"events:\n  hook_command: [/bin/hook, -v]\n  hook_timeout: 1s\n  hook_filter: \"dispatcher:\"\n")
	if err != nil {
		t.Fatal(err)
	}
	got, restart := cur.Reloaded(next)
	if len(restart) != 0 {
		t.Errorf("restart keys %v, want none", restart)
	}
	if !reflect.DeepEqual(got.Events, next.Events) {
		t.Errorf("events after the reload %+v, want %+v", got.Events, next.Events)
	}
}
