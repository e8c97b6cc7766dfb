package dataplane

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/sipedge/sipedge/userspace/testutil"
)

// TestGeneratedObjectsCurrent fails when the committed bpf2go output
// (xdpsip_bpfel.go and .o) is not what `make generate` builds from bpf/
// now: the committed objects are what `go build` embeds, so they must never
// lag the C sources. It regenerates into a scratch copy of the module.
func TestGeneratedObjectsCurrent(t *testing.T) {
	testutil.NeedCommand(t, "clang", exec.LookPath)
	_, here, _, _ := runtime.Caller(0)
	pkg := filepath.Dir(here)
	root := filepath.Join(pkg, "..", "..")

	scratch := t.TempDir()
	for _, p := range []string{"go.mod", "go.sum", "bpf", "userspace/dataplane/gen.go"} {
		copyTree(t, filepath.Join(root, p), filepath.Join(scratch, p))
	}
	gen := exec.Command("go", "generate", "./userspace/dataplane/")
	gen.Dir = scratch
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("go generate: %v\n%s", err, out)
	}
	for _, name := range []string{"xdpsip_bpfel.go", "xdpsip_bpfel.o"} {
		committed, err := os.ReadFile(filepath.Join(pkg, name))
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := os.ReadFile(filepath.Join(scratch, "userspace", "dataplane", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(committed, fresh) {
			t.Errorf("%s is stale: run `make generate` and commit the result", name)
		}
	}
}

// copyTree copies a file or a directory tree.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
