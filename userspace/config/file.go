package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
	"unicode/utf8"
)

// Limits on the files the agent reads (docs/config.md, "Limits").
const (
	// MaxConfigSize is the largest sipedge.yaml accepted, in bytes.
	MaxConfigSize = 1 << 20
	// MaxListSize is the largest dispatcher.list accepted, in bytes.
	MaxListSize = 32 << 20
	// ReadTimeout bounds the reading of one file: a file on a hung
	// network mount fails the load (or the reload) instead of blocking it.
	ReadTimeout = 10 * time.Second
)

// readFile reads the regular file p, at most limit bytes, within
// ReadTimeout or until ctx ends. It opens without blocking (a FIFO would
// wait for a writer) and refuses anything but a regular file before
// reading: a FIFO could block forever and /dev/zero never ends.
func readFile(ctx context.Context, p string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	// The open and the stat are inside the deadline too: on a hung
	// network mount they block as long as a read does.
	return finishRead(ctx, p, func() ([]byte, error) {
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		if err != nil {
			return nil, err
		}
		return readOpened(f, p, limit)
	})
}

// readFS is readFile on a file system (the embedded examples): the same
// checks, without the deadline (fs.FS reads are in memory or local).
func readFS(fsys fs.FS, p string, limit int64) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	return readOpened(f, p, limit)
}

// readOpened checks that the open file f is regular and within limit, then
// reads it whole and closes it.
func readOpened(f fs.File, p string, limit int64) ([]byte, error) {
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkRegular(p, fi, limit); err != nil {
		return nil, err
	}
	return readLimited(f, p, limit)
}

func checkRegular(p string, fi fs.FileInfo, limit int64) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is %s, not a regular file", p, fileKind(fi.Mode()))
	}
	if fi.Size() > limit {
		return fmt.Errorf("%s is %d bytes; the limit is %d", p, fi.Size(), limit)
	}
	return nil
}

// readLimited reads r to its end, failing once it passes limit (a file
// that grows while it is read).
func readLimited(r io.Reader, p string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew past the limit of %d bytes while being read", p, limit)
	}
	return data, nil
}

// finishRead runs read and waits for it until ctx ends. A read abandoned
// this way finishes in the background; its result is dropped.
func finishRead(ctx context.Context, p string, read func() ([]byte, error)) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := read()
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		err := context.Cause(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: read did not finish within %v", p, ReadTimeout)
		}
		return nil, fmt.Errorf("%s: read did not finish: %w", p, err)
	}
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// checkText reports the first byte sequence YAML may not hold, with its
// line and column: invalid UTF-8, or a control character other than tab,
// line feed, carriage return and NEL (YAML 1.2 §5.1). A byte order mark may
// open the file. The YAML parser reports these without a line.
func checkText(data []byte, el *errList) bool {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			el.add(line, "byte 0x%02x at column %d is not UTF-8", data[i], col)
			return false
		case r == '\n':
			line, col = line+1, 0
		case r == '\t' || r == '\r' || r == 0x85 || (r == 0xFEFF && i == 0):
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0xFFFE || r == 0xFFFF:
			el.add(line, "control character %U at column %d; YAML allows tab, line ends and printable characters only", r, col)
			return false
		}
		i += size
		col++
	}
	return true
}
