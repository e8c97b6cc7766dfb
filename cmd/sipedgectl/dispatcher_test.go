package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dispatch"
	"github.com/sipedge/sipedge/userspace/rpc"
)

// TestRunDispatcher drives sipedgectl end to end against an in-process
// server backed by a real dispatcher. The steps share the dispatcher and run
// in order.
func TestRunDispatcher(t *testing.T) {
	entries := []dispatch.Entry{
		{SetID: 2, URI: "sip:10.0.0.3", Source: "test:1"},
		{SetID: 1, URI: "sip:10.0.0.1", Flags: dispatch.FlagInactive, Source: "test:2"},
		{SetID: 1, URI: "sip:10.0.0.2:5060", Flags: dispatch.FlagProbing, Priority: 5, Attrs: "duid=gw2;weight=50", Source: "test:3"},
	}
	snap, err := dispatch.Build(context.Background(), entries, dispatch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := rpc.New(nil)
	rpc.RegisterDispatcher(srv, dispatch.New(snap), func(context.Context) error { return nil }, 5*time.Second)
	sock := startServer(t, srv)

	steps := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name: "list as a table",
			args: []string{"-t", "dispatcher.list"},
			wantStdout: "" +
				"SET  IDX  URI                FLAGS  PRIORITY  ATTRS\n" +
				"1    0    sip:10.0.0.2:5060  AP     5         duid=gw2;weight=50\n" +
				"1    1    sip:10.0.0.1       IX     0\n" +
				"2    0    sip:10.0.0.3       AX     0\n",
		},
		{
			name:       "set_state with kamctl-style numeric group",
			args:       []string{"dispatcher.set_state", "a", "1", "sip:10.0.0.1"},
			wantStdout: "\"Ok. Dispatcher state updated.\"\n",
		},
		{
			name: "state visible in the list",
			args: []string{"-t", "dispatcher.list", "short"},
			wantStdout: "" +
				"SET  IDX  URI                FLAGS  PRIORITY  ATTRS\n" +
				"1    0    sip:10.0.0.2:5060  AP     5\n" +
				"1    1    sip:10.0.0.1       AX     0\n" +
				"2    0    sip:10.0.0.3       AX     0\n",
		},
		{
			name:       "hash",
			args:       []string{"dispatcher.hash", "100", "a84b4c76e66710@pc33.atlanta.com"},
			wantStdout: "{\n  \"hashid\": -2119949202,\n  \"slot\": 94\n}\n",
		},
		{
			name:       "hash table",
			args:       []string{"-t", "dispatcher.hash", "100", "abc"},
			wantStdout: "KEY     VALUE\nhashid  7167810\nslot    10\n",
		},
		{
			name:       "ping_active",
			args:       []string{"dispatcher.ping_active", "0"},
			wantStdout: "{\n  \"NewPingState\": 0,\n  \"OldPingState\": 1\n}\n",
		},
		{
			name:       "reload",
			args:       []string{"dispatcher.reload"},
			wantStdout: "\"Ok. Dispatcher successfully reloaded.\"\n",
		},
		{
			name:       "reload too soon exits 1",
			args:       []string{"dispatcher.reload"},
			wantCode:   1,
			wantStderr: "sipedgectl: dispatcher.reload: error 500: Ongoing reload (last reload ",
		},
		{
			name:       "remove unknown exits 1",
			args:       []string{"dispatcher.remove", "1", "sip:10.9.9.9"},
			wantCode:   1,
			wantStderr: "sipedgectl: dispatcher.remove: error 500: Removing dispatcher dst failed (remove \"sip:10.9.9.9\" from set 1: no such destination)\n",
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"-s", sock}, st.args...), &stdout, &stderr, func(string) string { return "" })
			if code != st.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, st.wantCode, stderr.String())
			}
			if stdout.String() != st.wantStdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), st.wantStdout)
			}
			if !bytes.HasPrefix(stderr.Bytes(), []byte(st.wantStderr)) {
				t.Errorf("stderr %q, want it to start with %q", stderr.String(), st.wantStderr)
			}
		})
	}
}
