package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// maxUnixPath is the longest socket path bind(2) takes on Linux (sun_path
// is 108 bytes, NUL included).
const maxUnixPath = 107

// ServeUnix serves the methods on a stream unix socket at path until ctx
// ends, then closes the connections, waits for running handlers and removes
// the socket file. It returns nil after a shutdown by ctx.
//
// The parent directory is created (0755) if missing. A stale socket left by
// a dead process is replaced; a socket some process still answers on, or a
// path that is not a socket, is an error. The socket appears at path with
// mode 0600 already set: it is bound in a private temporary directory,
// chmodded, then renamed into place, so no client ever sees it wider.
//
// A streaming method (RegisterStream) takes the connection over: after
// its answer, records follow one per line until either side closes.
//
// Framing: a client writes JSON values (request objects or batch arrays) one
// after another on the connection, with or without newlines between them;
// each gets one answer, a single JSON line, in order. Notifications get
// none. Bytes that are not JSON get a parse error, then the connection is
// closed, since the stream cannot be resynchronised.
func (s *Server) ServeUnix(ctx context.Context, path string) (err error) {
	ln, err := listenUnix(path)
	if err != nil {
		return err
	}
	owned, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return fmt.Errorf("rpc socket %s: %w", path, err)
	}
	removed := false
	remove := func() {
		// Remove the file only if it is still ours: a newer server may
		// have replaced it.
		if removed {
			return
		}
		removed = true
		if fi, err := os.Stat(path); err == nil && os.SameFile(fi, owned) {
			os.Remove(path)
		}
	}
	defer remove()
	s.log.Info("rpc listening", "socket", path)

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	// Connections and their handlers live until ServeUnix returns; on the
	// way out the socket file goes first, then running calls get
	// shutdownGrace to finish.
	connCtx, cancel := context.WithCancel(ctx)
	var (
		wg      sync.WaitGroup
		running atomic.Int64
	)
	defer func() {
		cancel()
		remove()
		if !waitTimeout(&wg, s.limits.shutdownGrace) && err == nil {
			err = fmt.Errorf("rpc socket %s: calls still running %v after shutdown: %d; leaving them", path, s.limits.shutdownGrace, running.Load())
		}
	}()
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("rpc socket %s: listener closed", path)
			}
			// Out of file descriptors and the like: wait and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("rpc accept failed", "socket", path, "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		wg.Go(func() { s.serveConn(connCtx, conn, &running) })
	}
}

// waitTimeout waits for wg at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// listenUnix binds path with mode 0600 (see ServeUnix).
func listenUnix(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// 0755 whatever the umask: clients must reach the socket.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("rpc socket directory %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, fmt.Errorf("rpc socket directory %s: %w", dir, err)
		}
	}
	if err := checkStale(path); err != nil {
		return nil, err
	}

	tmpDir, err := os.MkdirTemp(dir, ".rpc-")
	if err != nil {
		return nil, fmt.Errorf("rpc socket %s: private directory: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	bindPath := filepath.Join(tmpDir, "s")
	if len(bindPath) > maxUnixPath {
		// The detour does not fit in sun_path; bind in place and chmod
		// at once. The socket is briefly as wide as the umask allows.
		bindPath = path
	}

	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bindPath, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("rpc socket %s: listen: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(what string, err error) (*net.UnixListener, error) {
		ln.Close()
		os.Remove(bindPath)
		return nil, fmt.Errorf("rpc socket %s: %s: %w", path, what, err)
	}
	if err := os.Chmod(bindPath, 0o600); err != nil {
		return fail("chmod", err)
	}
	if bindPath != path {
		if err := os.Rename(bindPath, path); err != nil {
			return fail("rename into place", err)
		}
	}
	return ln, nil
}

// checkStale accepts a missing path or a socket nobody answers on (and
// removes the latter); it refuses a live socket or a file of another kind.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rpc socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("rpc socket %s: exists and is not a socket (%s); not removing it", path, fi.Mode().Type())
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("rpc socket %s: in use by a running process", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rpc socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

// serveConn answers the requests of one connection in order. Each request
// must arrive whole within the idle timeout of the previous answer (or of
// the connection's start) and be at most maxRequest bytes; running counts
// the calls in progress.
func (s *Server) serveConn(ctx context.Context, conn net.Conn, running *atomic.Int64) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	rr := &requestReader{r: conn, max: s.limits.maxRequest}
	dec := json.NewDecoder(rr)
	answer := func(resp []byte) bool {
		conn.SetWriteDeadline(time.Now().Add(s.limits.write))
		if _, err := conn.Write(append(resp, '\n')); err != nil {
			s.log.Debug("rpc connection write failed", "error", err)
			return false
		}
		return true
	}
	for {
		rr.reset()
		conn.SetReadDeadline(time.Now().Add(s.limits.idle))
		var msg json.RawMessage
		if err := dec.Decode(&msg); err != nil {
			var syntax *json.SyntaxError
			switch {
			case errors.Is(err, errTooLarge):
				answer(marshalError(nil, standardError(CodeInvalidRequest, fmt.Sprintf("request over %d bytes", s.limits.maxRequest))))
			case errors.As(err, &syntax):
				answer(marshalError(nil, standardError(CodeParseError, err.Error())))
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.log.Debug("rpc connection idle: closing it", "timeout", s.limits.idle)
			case !errors.Is(err, io.EOF) && ctx.Err() == nil:
				s.log.Debug("rpc connection read failed", "error", err)
			}
			return
		}
		if c, ok := s.streamRequest(msg); ok {
			if s.serveStreamConn(ctx, conn, c) {
				continue // refused (bad params): answered, serve on
			}
			return // the connection carried the stream
		}
		running.Add(1)
		resp := s.handleMessage(ctx, msg)
		running.Add(-1)
		if resp != nil && !answer(resp) {
			return
		}
	}
}
