package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const minimalYAML = `listeners:
  - name: edge
    address: udp:127.0.0.1:5060
rules:
  - listener: edge
    set: 1
dispatcher:
  list_file: LIST
`

// writeConfig writes a minimal config naming list as its list_file.
func writeConfig(t *testing.T, dir, list string) string {
	t.Helper()
	p := filepath.Join(dir, "sipedge.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(minimalYAML, "LIST", list, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mkfifo(t *testing.T, p string) string {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatalf("mkfifo %s: %v", p, err)
	}
	return p
}

// finish runs fn and fails the test unless it returns within 5 s: the file
// readers must never block on what they read.
func finish(t *testing.T, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("still reading after 5 s")
		return nil
	}
}

// TestLoadNotRegular: a config or a list that is a FIFO, a character
// device or a directory is refused at once, naming the file and its kind,
// instead of blocking (FIFO) or reading forever (/dev/zero).
func TestLoadNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := mkfifo(t, filepath.Join(dir, "fifo"))
	for _, tc := range []struct {
		name, path, want string
	}{
		{"fifo", fifo, "is a named pipe, not a regular file"},
		{"dev zero", "/dev/zero", "is a character device, not a regular file"},
		{"directory", dir, "is a directory, not a regular file"},
	} {
		t.Run("config "+tc.name, func(t *testing.T) {
			err := finish(t, func() error { _, err := Load(tc.path); return err })
			if err == nil || !strings.Contains(err.Error(), tc.path+" "+tc.want) {
				t.Errorf("Load(%s) = %v, want an error containing %q", tc.path, err, tc.path+" "+tc.want)
			}
		})
		t.Run("list "+tc.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, t.TempDir(), tc.path))
			if err != nil {
				t.Fatal(err)
			}
			err = finish(t, func() error { _, err := c.ReadDispatcherList(); return err })
			if err == nil || !strings.Contains(err.Error(), tc.path+" "+tc.want) {
				t.Errorf("ReadDispatcherList(%s) = %v, want an error containing %q", tc.path, err, tc.path+" "+tc.want)
			}
		})
	}
}

// TestLoadTooLarge: files over the documented limits are refused before
// they are read.
func TestLoadTooLarge(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxListSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = Load(big)
	if want := "the limit is 1048576"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Load(big) = %v, want %q", err, want)
	}
	c, err := Load(writeConfig(t, dir, big))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ReadDispatcherList()
	if want := "the limit is 33554432"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("ReadDispatcherList(big) = %v, want %q", err, want)
	}
}

// TestReadDeadline: a read that does not finish is abandoned when the
// context ends.
func TestReadDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	block := make(chan struct{})
	defer close(block)
	_, err := finishRead(ctx, "slow.list", func() ([]byte, error) { <-block; return nil, nil })
	if err == nil || !strings.Contains(err.Error(), "slow.list: read did not finish") {
		t.Errorf("err = %v", err)
	}
}

// TestLoadBadBytes: bytes the YAML may not hold are errors with a line.
func TestLoadBadBytes(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"not UTF-8", "listeners:\n  - name: ed\xffge\n", "sipedge.yaml:2: byte 0xff at column 13 is not UTF-8"},
		{"control byte", "listeners:\n\n  - name: ed\x01ge\n", "sipedge.yaml:3: control character U+0001 at column 13"},
		{"NUL", "log:\n  level: info\x00\n", "sipedge.yaml:2: control character U+0000 at column 14"},
		{"C1 control", "log:\n  level: \u0085info\u009b\n", "sipedge.yaml:2: control character U+009B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "sipedge.yaml")
			if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), filepath.Dir(p)+"/"+tc.want) {
				t.Errorf("Load = %v, want %q", err, tc.want)
			}
		})
	}
}
