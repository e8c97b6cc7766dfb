package rpc

import (
	"errors"
	"io"
	"time"
)

// Limits of the control servers (docs/rpc.md, "Limits").
const (
	// MaxRequest is the largest request (one JSON value on the unix
	// socket, one POST body over HTTP), in bytes.
	MaxRequest = 1 << 20
	// IdleTimeout: a unix connection closes when no complete request
	// arrives for this long after it opened or after its last answer; an
	// HTTP keep-alive connection closes after this long without a request.
	IdleTimeout = 30 * time.Second
	// HTTPHeaderTimeout bounds the reading of an HTTP request's headers,
	// HTTPReadTimeout the whole request, body included.
	HTTPHeaderTimeout = 5 * time.Second
	HTTPReadTimeout   = 10 * time.Second
	// WriteTimeout bounds writing one answer to a client that does not
	// read it.
	WriteTimeout = 10 * time.Second
	// ShutdownGrace is how long a stopping server waits for running calls
	// once their context is cancelled.
	ShutdownGrace = 2 * time.Second
	// maxHeaderBytes bounds an HTTP request's headers.
	maxHeaderBytes = 16 << 10
)

// limits are a Server's limits; tests shorten them.
type limits struct {
	maxRequest    int64
	idle          time.Duration
	httpHeader    time.Duration
	httpRead      time.Duration
	write         time.Duration
	shutdownGrace time.Duration
}

func defaultLimits() limits {
	return limits{
		maxRequest:    MaxRequest,
		idle:          IdleTimeout,
		httpHeader:    HTTPHeaderTimeout,
		httpRead:      HTTPReadTimeout,
		write:         WriteTimeout,
		shutdownGrace: ShutdownGrace,
	}
}

// errTooLarge ends a unix connection whose request passes maxRequest.
var errTooLarge = errors.New("request too large")

// requestReader lets at most n bytes through between two resets: one
// request, plus what the JSON decoder read ahead of the previous one.
type requestReader struct {
	r    io.Reader
	max  int64
	left int64
}

func (l *requestReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// reset starts the budget of the next request.
func (l *requestReader) reset() { l.left = l.max }
