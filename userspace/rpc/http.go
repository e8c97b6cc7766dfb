package rpc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTPPath is where ServeHTTP answers, as Kamailio's xhttp + jsonrpcs
// setups conventionally do.
const HTTPPath = "/RPC"

// HTTPAuth is how HTTP callers authenticate. Token set: every request
// needs "Authorization: Bearer TOKEN". None: no authentication, which
// must be asked for explicitly, since any local user can reach a loopback
// port. The zero value is refused.
type HTTPAuth struct {
	Token string
	None  bool
}

// httpHandler wraps s in the token check of auth.
func (s *Server) httpHandler(auth HTTPAuth) (http.Handler, error) {
	switch {
	case auth.Token != "" && auth.None:
		return nil, errors.New("rpc http: both a token and no authentication given")
	case auth.None:
		return s, nil
	case auth.Token == "":
		return nil, errors.New("rpc http: no token given; authentication must be turned off explicitly")
	}
	// Comparing digests keeps the comparison constant-time whatever the
	// lengths.
	want := sha256.Sum256([]byte(auth.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sipedge"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		s.ServeHTTP(w, r)
	}), nil
}

// ServeHTTP answers JSON-RPC over HTTP: POST /RPC with one request or a
// batch as the body. Like Kamailio's jsonrpcs, the status line carries a
// single call's fault (500 for codes outside 100–599) and the body always
// carries the JSON-RPC answer; a batch is 200, notifications alone are 204.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != HTTPPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "JSON-RPC needs POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.limits.maxRequest))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body over "+strconv.FormatInt(s.limits.maxRequest, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if c, ok := s.streamRequest(body); ok {
		s.serveStreamHTTP(w, r, c)
		return
	}
	resp := s.handleMessage(r.Context(), body)
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus(resp))
	w.Write(append(resp, '\n'))
}

// httpStatus maps a single call's error code onto the status line, as
// jsonrpcs does; successes and batches are 200.
func httpStatus(resp []byte) int {
	if len(resp) == 0 || resp[0] != '{' {
		return http.StatusOK
	}
	var r struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(resp, &r) != nil || r.Error == nil {
		return http.StatusOK
	}
	if r.Error.Code >= 100 && r.Error.Code <= 599 {
		return r.Error.Code
	}
	return http.StatusInternalServerError
}

// ListenHTTP serves ServeHTTP on addr, behind auth, until ctx ends. addr
// must name a loopback address ("127.0.0.1:8080", "[::1]:8080",
// "localhost:8080"): the RPC is never offered beyond the host. Requests
// are bounded by MaxRequest and the HTTP timeouts (limits.go).
func (s *Server) ListenHTTP(ctx context.Context, addr string, auth HTTPAuth) error {
	if err := checkLoopback(addr); err != nil {
		return err
	}
	if _, err := s.httpHandler(auth); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("rpc http listen %s: %w", addr, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		ln.Close()
		return fmt.Errorf("rpc http listen %s: bound %s, which is not loopback; refusing", addr, ln.Addr())
	}
	return s.serveHTTP(ctx, ln, auth)
}

func (s *Server) serveHTTP(ctx context.Context, ln net.Listener, auth HTTPAuth) error {
	h, err := s.httpHandler(auth)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.limits.httpHeader,
		ReadTimeout:       s.limits.httpRead,
		// A call may wait for a file read or DNS (dispatcher.reload).
		WriteTimeout:   s.limits.httpRead + 30*time.Second,
		IdleTimeout:    s.limits.idle,
		MaxHeaderBytes: maxHeaderBytes,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.log.Info("rpc http listening", "addr", ln.Addr().String(), "path", HTTPPath)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("rpc http serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), s.limits.shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

// checkLoopback refuses any listen address that is not loopback.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("rpc http address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("rpc http address %q: not a loopback address; the RPC listens only on 127.0.0.0/8, ::1 or localhost", addr)
	}
	return nil
}
