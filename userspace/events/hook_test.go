package events

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startHook runs a hook on a new bus until the test ends.
func startHook(t *testing.T, cfg HookConfig) (*Bus, *Hook, *syncBuffer, context.CancelFunc) {
	t.Helper()
	var logs syncBuffer
	b := NewBus(testLogger(&logs))
	h := NewHook(b, cfg, testLogger(&logs))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Hook.Run did not return within 10 s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return b, h, &logs, stop
}

// waitFile waits until path exists and is not empty.
func waitFile(t *testing.T, path string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %v", path, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits until the log holds substr.
func waitLog(t *testing.T, logs *syncBuffer, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(logs.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("log has no %q within %v:\n%s", substr, timeout, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHookEnvironment: the hook gets the event in SIPEDGE_* variables,
// none inherited from the agent's own environment, and the filter keeps
// other events away from it.
func TestHookEnvironment(t *testing.T) {
	t.Setenv("SIPEDGE_STALE", "from the agent")
	dir := t.TempDir()
	b, h, logs, _ := startHook(t, HookConfig{
		Command: []string{"sh", "-c", `env | grep ^SIPEDGE_ | sort > "$1/$SIPEDGE_EVENT.env"`, "sh", dir},
		Filter:  []string{"dispatcher:"},
	})
	b.Publish(New("tcp:closed", F("conn", 7)))
	b.Publish(New(DstDown, F("set", 2), F("uri", "sip:10.0.0.1:5060"), F("iuid", "dspt-00000001"), F("state", "inactive"), F("code", 408), F("rtt", 1500*time.Microsecond)))
	got := waitFile(t, filepath.Join(dir, DstDown+".env"), 10*time.Second)
	for _, want := range []string{"SIPEDGE_EVENT=dispatcher:dst-down\n", "SIPEDGE_SET=2\n", "SIPEDGE_URI=sip:10.0.0.1:5060\n",
		"SIPEDGE_IUID=dspt-00000001\n", "SIPEDGE_STATE=inactive\n", "SIPEDGE_CODE=408\n", "SIPEDGE_RTT=1.5ms\n", "SIPEDGE_TIME=20"} {
		if !strings.Contains(got, want) {
			t.Errorf("hook environment lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "SIPEDGE_STALE") {
		t.Errorf("the agent's SIPEDGE_ variable reached the hook:\n%s", got)
	}
	waitLog(t, logs, "event hook ran", 5*time.Second)
	if _, err := os.Stat(filepath.Join(dir, "tcp:closed.env")); err == nil {
		t.Errorf("the hook ran for tcp:closed, which its filter leaves out")
	}
	if st := h.Stats(); st.Runs != 1 || st.Failed != 0 {
		t.Errorf("stats %+v, want 1 run, none failed", st)
	}
}

// dead reports whether pid is gone or a zombie waiting for its parent.
func dead(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
}

// TestHookTimeoutKillsGroup: a hook that hangs (sleep 60) and whose
// child hangs too is killed at its timeout, the child with it (the whole
// process group), the run is logged once as killed and counted.
func TestHookTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	const timeout = 300 * time.Millisecond
	b, h, logs, _ := startHook(t, HookConfig{
		Command: []string{"sh", "-c", `sleep 60 & echo $! > "$1/child"; echo $$ > "$1/leader"; sleep 60`, "sh", dir},
		Timeout: timeout,
	})
	start := time.Now()
	b.Publish(New(DstDown))
	var pids []int
	for _, name := range []string{"leader", "child"} {
		pid, err := strconv.Atoi(strings.TrimSpace(waitFile(t, filepath.Join(dir, name), 5*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	t.Cleanup(func() { // never leave a sleep behind, even on failure
		for _, pid := range pids {
			if !dead(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	waitLog(t, logs, "event hook killed at its timeout", 10*time.Second)
	if took := time.Since(start); took > timeout+5*time.Second {
		t.Errorf("the hook ran %v, its timeout is %v", took, timeout)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for !dead(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d of the hook (leader %d, child %d) still alive after the timeout", pid, pids[0], pids[1])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if n := strings.Count(logs.String(), "event hook killed"); n != 1 {
		t.Errorf("the kill logged %d times, want once:\n%s", n, logs.String())
	}
	if st := h.Stats(); st.TimedOut != 1 || st.Failed != 1 || st.Running != 0 {
		t.Errorf("stats %+v, want 1 timed out", st)
	}
}

// TestHookHugeOutput: a hook writing 20 MB is not blocked by its pipe,
// and the log gets HookOutputMax bytes of it and the count of the rest.
func TestHookHugeOutput(t *testing.T) {
	const total = 20_000_000
	b, _, logs, _ := startHook(t, HookConfig{
		Command: []string{"sh", "-c", "head -c " + strconv.Itoa(total) + " /dev/zero | tr '\\0' y; echo done >&2"},
		Timeout: 30 * time.Second,
	})
	b.Publish(New(DstUp))
	waitLog(t, logs, "event hook ran", 30*time.Second)
	out := logs.String()
	if !strings.Contains(out, "output_truncated="+strconv.Itoa(total+len("done\n")-HookOutputMax)) {
		t.Errorf("log does not count the %d bytes left out:\n%.600s", total+len("done\n")-HookOutputMax, out)
	}
	if len(out) > 2*HookOutputMax+1000 {
		t.Errorf("log is %d bytes for one run, want about %d", len(out), HookOutputMax)
	}
}

// TestHookBoundedQueue: with every worker busy, events beyond the queue
// are dropped and counted, Publish does not wait, at most HookWorkers
// runs are in progress, and stopping kills them.
func TestHookBoundedQueue(t *testing.T) {
	b, h, logs, stop := startHook(t, HookConfig{Command: []string{"sleep", "30"}, Timeout: time.Minute})
	start := time.Now()
	const extra = 10
	for range HookWorkers + HookQueue + extra {
		b.Publish(New(DstDown))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("publishing took %v", took)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Running < HookWorkers && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if n := h.Stats().Running; n != HookWorkers {
		t.Errorf("%d runs in progress, want %d", n, HookWorkers)
	}
	// The workers took HookWorkers events off the queue, perhaps before
	// the queue filled up.
	if lost := b.Stats().Lost; lost < extra || lost > extra+HookWorkers {
		t.Errorf("%d events lost, want %d to %d", lost, extra, extra+HookWorkers)
	}
	if !strings.Contains(logs.String(), `events lost`) {
		t.Errorf("the loss is not logged")
	}
	start = time.Now()
	stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopping with %d hooks running took %v", HookWorkers, took)
	}
	if n := h.Stats().Running; n != 0 {
		t.Errorf("%d runs left after the stop", n)
	}
}
