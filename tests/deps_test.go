package tests

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakefileTestDeps: every command a test of the module asks for with
// testutil.NeedCommand (by name, or over a []string it ranges over) is in
// the Makefile's TEST_DEPS, so `make test-deps` installs it on a fresh
// host and no test skips (or, under CI=true, fails) for want of it.
func TestMakefileTestDeps(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TEST_DEPS\s*:=((?:.*\\\n)*.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile has no TEST_DEPS")
	}
	deps := map[string]bool{}
	for _, f := range strings.Fields(strings.ReplaceAll(string(m[1]), "\\\n", " ")) {
		cmd, pkg, ok := strings.Cut(f, ":")
		if !ok || pkg == "" {
			t.Errorf("TEST_DEPS entry %q is not COMMAND:PACKAGE", f)
		}
		deps[cmd] = true
	}
	direct := regexp.MustCompile(`NeedCommand\(\w+, "([^"]+)"`)
	ranged := regexp.MustCompile(`range \[\]string\{([^}]*)\}\s*\{\s*testutil\.NeedCommand\(`)
	quoted := regexp.MustCompile(`"([^"]+)"`)
	asked := map[string][]string{} // command → files
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, x := range direct.FindAllSubmatch(b, -1) {
			asked[string(x[1])] = append(asked[string(x[1])], path)
		}
		for _, x := range ranged.FindAllSubmatch(b, -1) {
			for _, q := range quoted.FindAllSubmatch(x[1], -1) {
				asked[string(q[1])] = append(asked[string(q[1])], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) < 5 {
		t.Fatalf("found only %d commands the tests ask for (%v): the scan is broken", len(asked), asked)
	}
	for cmd, files := range asked {
		if !deps[cmd] {
			t.Errorf("%v ask for %q, which the Makefile's TEST_DEPS does not list", files, cmd)
		}
	}
}
