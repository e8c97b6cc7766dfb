// Package tests holds sipedge's integration tests: the real agent binary
// between real SIPp clients and servers, on loopback and in network
// namespaces. See README.md for what each test proves and how to run it.
package tests

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sipedge/sipedge/tests/agent"
)

// bins are the sipedge and sipedgectl binaries TestMain built.
var bins agent.Bins

// TestMain builds the agent once for every test. A build failure fails
// the whole package loudly: these tests exist to run the real binary.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	removeStaleBinDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("sipedge-tests-bin-%d-", os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	bins, err = agent.Build(ctx, dir, raceEnabled)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: FAIL: cannot build the agent, so no integration test can run:\n%v\n", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "tests: built sipedge and sipedgectl (race=%t) in %v\n", raceEnabled, time.Since(start).Round(time.Millisecond))
	}
	// A race-built binary sleeps a second at exit by default, so that
	// goroutines still running can report a race: each sipedgectl call of
	// a test would pay it (TestDialogsCallOutcomes: 14.7 s with it, 7.5 s
	// without). sipedgectl runs no goroutine of its own, and the agent
	// stops its subsystems before it exits, so the sleep would catch
	// nothing a report during the run does not.
	if raceEnabled && os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	return m.Run()
}

// removeStaleBinDirs removes the binary directories of earlier test
// processes that died without cleaning up (a panicking test exits the
// binary before TestMain's deferred removal runs).
func removeStaleBinDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "sipedge-tests-bin-*-*"))
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), "-")
		if len(f) < 5 {
			continue
		}
		pid, err := strconv.Atoi(f[3])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		os.RemoveAll(d)
	}
}
