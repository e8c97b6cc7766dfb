// Package testutil holds helpers shared by sipedge's tests. It is imported
// only from _test.go files.
package testutil

import (
	"os"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where a test that
// cannot run must fail instead of skipping.
func InCI() bool { return os.Getenv("CI") == "true" }

// NeedRoot skips t when the process is not root, and fails it under CI,
// where every test is expected to run.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("test needs root, and CI=true forbids skipping it")
	}
	t.Skip("test needs root; run as root (or under CI) to exercise it")
}

// NeedCommand skips t when the named program is not on PATH, and fails it
// under CI: CI installs every tool the tests use (make test-deps).
func NeedCommand(t testing.TB, name string, lookPath func(string) (string, error)) string {
	t.Helper()
	p, err := lookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("test needs %s on PATH (make test-deps installs it), and CI=true forbids skipping: %v", name, err)
	}
	t.Skipf("test needs %s on PATH; run make test-deps", name)
	return ""
}
