package agent

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDstDownAtStart: a destination loaded inactive or disabled from the
// list file gets one dispatcher:dst-down event at start, logged and queued
// for the hook, naming its state (kamailio#4906); destinations that are
// up get none.
func TestDstDownAtStart(t *testing.T) {
	dir := t.TempDir()
	list := "1 sip:127.0.0.1:5080 0\n" + // up
		"1 sip:127.0.0.1:5081 1\n" + // inactive
		"1 sip:127.0.0.1:5082 4\n" + // disabled
		"1 sip:127.0.0.1:5083 2\n" + // trying: still up
		"2 sip:127.0.0.1:5084 5\n" // inactive and disabled: disabled
	for name, text := range map[string]string{"sipedge.yaml": agentYAML + "events:\n  hook_command: [\"true\"]\n", "d.list": list} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	a, err := newAgent(context.Background(), Options{ConfigPath: filepath.Join(dir, "sipedge.yaml"), Log: &out})
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`msg=dispatcher:dst-down set=(\d) uri=(\S+) iuid=\S+ state=(\w+) at=start`)
	var got []string
	for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
		got = append(got, m[1]+" "+m[2]+" "+m[3])
	}
	slices.Sort(got) // the order of a set's destinations is the dispatcher's
	want := []string{"1 sip:127.0.0.1:5081 inactive", "1 sip:127.0.0.1:5082 disabled", "2 sip:127.0.0.1:5084 disabled"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("dst-down lines at start:\n%s\nwant:\n%s\nlog:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out.String())
	}
	if n := strings.Count(out.String(), "dispatcher:dst-"); n != len(want) {
		t.Errorf("%d dispatcher events logged, want %d:\n%s", n, len(want), out.String())
	}
	// They are events, not only lines: they wait in the hook's queue
	// (subscribed before they were published) until it runs.
	st := a.events.Stats()
	if st.Published != uint64(len(want)) || len(st.Subscribers) != 1 || st.Subscribers[0].Queued != len(want) {
		t.Errorf("event stream %+v: want %d published and queued for the hook", st, len(want))
	}
}

// TestHookReload: a reload (SIGHUP) applies the events keys to the
// running hook without naming them as restart-only.
func TestHookReload(t *testing.T) {
	dir := t.TempDir()
	write := func(hook string) {
		t.Helper()
		for name, text := range map[string]string{"sipedge.yaml": agentYAML + "events:\n" + hook, "d.list": "1 sip:127.0.0.1:5080 0\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("  hook_command: [\"true\"]\n")
	var out lockedBuffer
	a, err := newAgent(context.Background(), Options{ConfigPath: filepath.Join(dir, "sipedge.yaml"), Log: &out})
	if err != nil {
		t.Fatal(err)
	}
	write("  hook_command: [\"false\", \"-x\"]\n  hook_timeout: 2s\n")
	if err := a.Reload(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if st := a.hook.Stats(); !slices.Equal(st.Command, []string{"false", "-x"}) || st.Timeout != 2*time.Second {
		t.Errorf("hook after the reload: %v %v, want [false -x] 2s", st.Command, st.Timeout)
	}
	if strings.Contains(out.String(), "only a restart applies it") {
		t.Errorf("a reload named an events key restart-only:\n%s", out.String())
	}
}
