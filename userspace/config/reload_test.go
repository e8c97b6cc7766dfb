package config

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKeyTags: every section field names its YAML key, so that a reload
// can name what it did not apply. A new key without a tag fails here.
func TestKeyTags(t *testing.T) {
	ct := reflect.TypeOf(Config{})
	for i := range ct.NumField() {
		f := ct.Field(i)
		if !f.IsExported() || f.Name == "File" {
			continue
		}
		if f.Tag.Get("key") == "" {
			t.Errorf("Config.%s has no key tag", f.Name)
		}
		if f.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range f.Type.NumField() {
			if sf := f.Type.Field(j); sf.Tag.Get("key") == "" {
				t.Errorf("%s.%s has no key tag", f.Type.Name(), sf.Name)
			}
		}
	}
}

func TestReloaded(t *testing.T) {
	load := func(extra string) *Config {
		t.Helper()
		c, err := loadString(t, yamlConfig+extra)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cur := load("dispatcher:\n  list_file: a.list\nfailover:\n  timeout: 5s\nlog:\n  level: info\n")
	next := load("dispatcher:\n  list_file: b.list\n  use_default: 1\nfailover:\n  timeout: 9s\nlog:\n  level: debug\n  format: json\n")
	got, restart := cur.Reloaded(next)
	if want := []string{"failover.timeout", "log.format"}; !slices.Equal(restart, want) {
		t.Errorf("restart keys %v, want %v", restart, want)
	}
	if got.Dispatcher.ListFile != "b.list" || !got.Dispatcher.UseDefault || got.Log.Level != "debug" {
		t.Errorf("live keys not applied: %+v %+v", got.Dispatcher, got.Log)
	}
	if got.Failover.Timeout != 5*time.Second || got.Log.Format != "text" {
		t.Errorf("restart-only keys changed: %v %q", got.Failover.Timeout, got.Log.Format)
	}
	if cur.Dispatcher.ListFile != "a.list" {
		t.Error("the running config was modified")
	}
	moved := load("\n\ndispatcher:\n  list_file: a.list\nfailover:\n  timeout: 5s\n")
	moved.Listeners[0].Line += 2
	if _, restart = cur.Reloaded(moved); len(restart) != 0 {
		t.Errorf("moving a listener's line: restart keys %v, want none", restart)
	}
	moved.Rules[0].Set = 2
	_, restart = cur.Reloaded(moved)
	if !slices.Contains(restart, "rules") {
		t.Errorf("restart keys %v lack rules", restart)
	}
}

func TestReadHTTPToken(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text, want, wantErr string
	}{
		{"good", "  0123456789abcdef0123\n", "0123456789abcdef0123", ""},
		{"short", "secret\n", "", "the token is 6 bytes; at least 16 are needed"},
		{"blank inside", "0123456789 abcdef\n", "", "holds byte 0x20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "tok"), []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			c := &Config{dir: dir, Control: Control{HTTPTokenFile: "tok"}}
			got, err := c.ReadHTTPToken(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v", got, err)
			}
		})
	}
}

// TestLiveKeysDocumented: docs/config.md's reload table lists exactly the
// keys a reload applies.
func TestLiveKeysDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Reloading (SIGHUP)")
	if !ok {
		t.Fatal(`docs/config.md has no "## Reloading (SIGHUP)" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var documented []string
	for _, line := range strings.Split(section, "\n") {
		if key, ok := strings.CutPrefix(line, "| `"); ok {
			key, _, _ = strings.Cut(key, "`")
			documented = append(documented, key)
		}
	}
	slices.Sort(documented)
	if !slices.Equal(documented, LiveKeys()) {
		t.Errorf("docs/config.md lists live keys %v, the code %v", documented, LiveKeys())
	}
}

// TestDialogsKeysLive: a reload applies the dialogs keys but enabled,
// which needs a restart (the fast path's event switch is a load-time
// constant).
func TestDialogsKeysLive(t *testing.T) {
	cur, err := loadString(t, yamlConfig)
	if err != nil {
		t.Fatal(err)
	}
	next, err := loadString(t, yamlConfig+"dialogs:\n  enabled: true\n  init_lifetime: 1m\n  active_lifetime: 2h\n  finish_lifetime: 5\n"+
		"  timer_interval: 10s\n  max_records: 10\n  src: $si\n  dst: $ru\n  data: $ci\n  tags:\n    - tag: x\n      source: 10.0.0.0/8\n"+
		"  limits:\n    - source: any\n      max: 3\n")
	if err != nil {
		t.Fatal(err)
	}
	got, restart := cur.Reloaded(next)
	if !slices.Equal(restart, []string{"dialogs.enabled"}) {
		t.Errorf("restart keys %v, want [dialogs.enabled]", restart)
	}
	want := next.Dialogs
	want.Enabled = false
	if !reflect.DeepEqual(got.Dialogs, want) {
		t.Errorf("dialogs after the reload %+v, want %+v", got.Dialogs, want)
	}
}
