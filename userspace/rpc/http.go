package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// HTTPPath is where ServeHTTP answers, as Kamailio's xhttp + jsonrpcs
// setups conventionally do.
const HTTPPath = "/RPC"

// maxHTTPBody bounds a request body.
const maxHTTPBody = 1 << 20

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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHTTPBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request body over "+strconv.Itoa(maxHTTPBody)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read request: "+err.Error(), http.StatusBadRequest)
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

// ListenHTTP serves ServeHTTP on addr until ctx ends. addr must name a
// loopback address ("127.0.0.1:8080", "[::1]:8080", "localhost:8080"): the
// RPC has no authentication, so it is never offered beyond the host.
func (s *Server) ListenHTTP(ctx context.Context, addr string) error {
	if err := checkLoopback(addr); err != nil {
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
	return s.serveHTTP(ctx, ln)
}

func (s *Server) serveHTTP(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.log.Info("rpc http listening", "addr", ln.Addr().String(), "path", HTTPPath)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("rpc http serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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
		return fmt.Errorf("rpc http address %q: not a loopback address; the RPC has no authentication, so it listens only on 127.0.0.0/8, ::1 or localhost", addr)
	}
	return nil
}
