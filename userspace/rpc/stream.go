package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// StreamFunc sends records with send, each one JSON line, until ctx ends
// (the client went away or the server stops) or send fails (the client
// does not read within the write timeout). Its error is only logged.
type StreamFunc func(ctx context.Context, send func(record any) error) error

// StreamHandler starts a stream: it checks params and takes what the
// stream needs (a subscription) before answering, so the client misses
// nothing published after the answer. ack is the answer's result. When
// it returns a non-nil run, run is called exactly once, with a cancelled
// ctx if the answer could not be written, so it can release what it took.
type StreamHandler func(ctx context.Context, params Params) (ack any, run StreamFunc, err error)

// RegisterStream adds a streaming method (events.subscribe). It must be
// called alone (not in a batch) and with an id; its answer is followed on
// the same connection (unix socket) or response body (HTTP) by one JSON
// record per line until either side ends the stream. docs/rpc.md.
func (s *Server) RegisterStream(method string, h StreamHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams == nil {
		s.streams = map[string]StreamHandler{}
	}
	s.streams[method] = h
}

func (s *Server) streamHandler(method string) (StreamHandler, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.streams[method]
	return h, ok
}

// streamCall is a request for a streaming method.
type streamCall struct {
	method string
	id     json.RawMessage
	params Params
	h      StreamHandler
}

// streamRequest recognises a single request object, with an id, for a
// streaming method. Anything else (batches, notifications, other methods,
// malformed requests) is for handleMessage, which answers a streaming
// method it gets with an error.
func (s *Server) streamRequest(msg []byte) (streamCall, bool) {
	msg = bytes.TrimSpace(msg)
	if len(msg) == 0 || msg[0] != '{' || !s.hasStreams() {
		return streamCall{}, false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(msg, &fields) != nil {
		return streamCall{}, false
	}
	id, hasID := fields["id"]
	if !hasID || !validID(id) {
		return streamCall{}, false
	}
	if v, ok := fields["jsonrpc"]; ok && string(bytes.TrimSpace(v)) != `"2.0"` {
		return streamCall{}, false
	}
	var method string
	if json.Unmarshal(fields["method"], &method) != nil {
		return streamCall{}, false
	}
	h, ok := s.streamHandler(method)
	if !ok {
		return streamCall{}, false
	}
	params, err := parseParams(fields["params"])
	if err != nil {
		return streamCall{}, false
	}
	return streamCall{method: method, id: id, params: params, h: h}, true
}

func (s *Server) hasStreams() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.streams) > 0
}

// start runs the handler's first part: the answer to send, and run. ok
// is false when the answer is an error: no stream follows it (run, if
// any, must still be called).
func (s *Server) start(ctx context.Context, c streamCall) (answer []byte, run StreamFunc, ok bool) {
	ack, run, rerr := func() (ack any, run StreamFunc, rerr *Error) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("rpc stream handler panicked", "method", c.method, "panic", p, "stack", string(debug.Stack()))
				ack, run, rerr = nil, nil, standardError(CodeInternalError, fmt.Sprintf("%s panicked", c.method))
			}
		}()
		ack, run, err := c.h(ctx, c.params)
		if err != nil {
			if e, ok := err.(*Error); ok {
				return nil, run, e
			}
			return nil, run, &Error{Code: CodeFault, Message: err.Error()}
		}
		return ack, run, nil
	}()
	if rerr != nil {
		return marshalError(c.id, rerr), run, false
	}
	b, err := encode(resultResponse{JSONRPC: "2.0", Result: ack, ID: c.id})
	if err != nil {
		return marshalError(c.id, standardError(CodeInternalError, "result not encodable")), run, false
	}
	return b, run, true
}

// runStream calls run with a send that writes one JSON line through
// write, and logs how the stream ended.
func (s *Server) runStream(ctx context.Context, method string, run StreamFunc, write func([]byte) error) {
	if run == nil {
		return
	}
	sent := 0
	err := run(ctx, func(v any) error {
		b, err := encode(v)
		if err != nil {
			return fmt.Errorf("encode record: %w", err)
		}
		if err := write(append(b, '\n')); err != nil {
			return err
		}
		sent++
		return nil
	})
	s.log.Debug("rpc stream ended", "method", method, "records", sent, "error", err)
}

// serveStreamConn serves a streaming call on a unix connection. When the
// handler refuses the call (bad params), the error is answered and it
// returns true: the connection serves on. Otherwise it takes the
// connection over and returns false once the stream ended (the caller
// closes conn): the idle timeout no longer applies (the client only
// reads), each record must be written within the write timeout (a
// client that does not read is cut off; its subscription's queue drops
// meanwhile, never the publisher), and the stream ends when the client
// closes its side or sends anything but blank space, or the server stops.
func (s *Server) serveStreamConn(ctx context.Context, conn net.Conn, c streamCall) (serveOn bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answer, run, ok := s.start(ctx, c)
	write := func(b []byte) error {
		conn.SetWriteDeadline(time.Now().Add(s.limits.write))
		_, err := conn.Write(b)
		return err
	}
	err := write(append(answer, '\n'))
	if !ok || err != nil {
		cancel()
		s.runStream(ctx, c.method, run, write)
		return !ok && err == nil
	}
	// The client's side: EOF (it closed), an error (the server closed
	// conn) or anything but blank space (a line end after the request)
	// ends the stream.
	conn.SetReadDeadline(time.Time{})
	go func() {
		defer cancel()
		var b [64]byte
		for {
			n, err := conn.Read(b[:])
			if err != nil || len(bytes.TrimSpace(b[:n])) > 0 {
				return
			}
		}
	}()
	s.runStream(ctx, c.method, run, write)
	return false
}

// serveStreamHTTP serves a streaming call as an HTTP response: status
// 200, then the answer and the records as JSON lines, each flushed at
// once; the stream ends when the client goes away or the server stops.
// A failed start (bad params) is answered like any call.
func (s *Server) serveStreamHTTP(w http.ResponseWriter, r *http.Request, c streamCall) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	answer, run, ok := s.start(ctx, c)
	rc := http.NewResponseController(w)
	// No read deadline to lift: net/http clears it for the background
	// read that watches for the client's close (and cancels r's context).
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		cancel()
	}
	w.WriteHeader(httpStatus(answer))
	write := func(b []byte) error {
		// The server's WriteTimeout is for one answer; a stream gets
		// the write timeout per record instead.
		_ = rc.SetWriteDeadline(time.Now().Add(s.limits.write))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write(append(answer, '\n')); err != nil {
		cancel()
	}
	s.runStream(ctx, c.method, run, write)
}
