package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// Handler runs one method. ctx is cancelled when the server shuts down (or
// the HTTP client goes away). The result is marshalled with encoding/json;
// use structs, not maps, where key order matters.
type Handler func(ctx context.Context, params Params) (any, error)

// Server routes JSON-RPC 2.0 requests to registered handlers. It is safe for
// concurrent use; Register may be called while serving.
type Server struct {
	log    *slog.Logger
	limits limits

	mu      sync.RWMutex
	methods map[string]Handler
	streams map[string]StreamHandler // RegisterStream
}

// New returns a server with no methods. A nil logger discards logs.
func New(logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{log: logger, methods: make(map[string]Handler), limits: defaultLimits()}
}

// Register adds or replaces the handler for method.
func (s *Server) Register(method string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.methods[method] = h
}

// Methods returns the registered method names, streaming ones included,
// sorted.
func (s *Server) Methods() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.methods)+len(s.streams))
	for name := range s.methods {
		names = append(names, name)
	}
	for name := range s.streams {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (s *Server) handler(method string) (Handler, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.methods[method]
	return h, ok
}

// handleMessage answers one JSON value: a request object or a batch array.
// It returns nil when nothing is to be sent (notifications only).
func (s *Server) handleMessage(ctx context.Context, msg []byte) []byte {
	msg = bytes.TrimSpace(msg)
	if !json.Valid(msg) {
		return marshalError(nil, standardError(CodeParseError, "request is not valid JSON"))
	}
	if msg[0] != '[' {
		return s.handleRequest(ctx, msg)
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(msg, &batch); err != nil {
		return marshalError(nil, standardError(CodeParseError, err.Error()))
	}
	if len(batch) == 0 {
		return marshalError(nil, standardError(CodeInvalidRequest, "empty batch"))
	}
	var out [][]byte
	for _, req := range batch {
		if resp := s.handleRequest(ctx, req); resp != nil {
			out = append(out, resp)
		}
	}
	if len(out) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.WriteByte('[')
	b.Write(bytes.Join(out, []byte{','}))
	b.WriteByte(']')
	return b.Bytes()
}

// handleRequest answers one request object; nil for a notification.
func (s *Server) handleRequest(ctx context.Context, raw json.RawMessage) []byte {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return marshalError(nil, standardError(CodeInvalidRequest, "request must be a JSON object"))
	}
	id, hasID := fields["id"]
	if hasID && !validID(id) {
		return marshalError(nil, standardError(CodeInvalidRequest, "id must be a string, a number or null"))
	}
	if v, ok := fields["jsonrpc"]; ok && string(bytes.TrimSpace(v)) != `"2.0"` {
		return marshalError(id, standardError(CodeInvalidRequest, `jsonrpc must be "2.0"`))
	}
	var method string
	if err := json.Unmarshal(fields["method"], &method); err != nil || method == "" {
		return marshalError(id, standardError(CodeInvalidRequest, "method must be a non-empty string"))
	}
	params, err := parseParams(fields["params"])
	if err != nil {
		return marshalError(id, standardError(CodeInvalidRequest, err.Error()))
	}

	start := time.Now()
	result, rerr := s.call(ctx, method, params)
	s.log.Debug("rpc call", "method", method, "params", params.Len(),
		"duration", time.Since(start), "error", rerr, "notification", !hasID)
	if !hasID {
		return nil
	}
	if rerr != nil {
		return marshalError(id, rerr)
	}
	b, err := encode(resultResponse{JSONRPC: "2.0", Result: result, ID: id})
	if err != nil {
		s.log.Error("rpc result not encodable", "method", method, "error", err)
		return marshalError(id, standardError(CodeInternalError, "result not encodable"))
	}
	return b
}

// call runs the handler, turning a panic into CodeInternalError and any
// error into an *Error.
func (s *Server) call(ctx context.Context, method string, params Params) (result any, rerr *Error) {
	h, ok := s.handler(method)
	if !ok {
		if _, stream := s.streamHandler(method); stream {
			return nil, standardError(CodeInvalidRequest, method+" streams records: send it alone (not in a batch), with an id")
		}
		return nil, standardError(CodeMethodNotFound, method)
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("rpc handler panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
			result, rerr = nil, standardError(CodeInternalError, fmt.Sprintf("%s panicked", method))
		}
	}()
	res, err := h(ctx, params)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, &Error{Code: CodeFault, Message: err.Error()}
	}
	return res, nil
}

// validID reports whether raw is an id the spec allows: string, number, null.
func validID(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch raw[0] {
	case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

func marshalError(id json.RawMessage, e *Error) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b, err := encode(errorResponse{JSONRPC: "2.0", Error: e, ID: id})
	if err != nil { // only an invalid id could do this, and ids are checked
		return []byte(`{"jsonrpc":"2.0","error":{"code":-32603,"message":"Internal error"},"id":null}`)
	}
	return b
}

// encode marshals v without HTML escaping: URIs and attribute bodies keep
// their '&', '<' and '>' for operators reading the socket by hand.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
