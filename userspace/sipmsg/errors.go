package sipmsg

import "errors"

// Hard limits. A message beyond one of them is not framed (Parse returns
// an error); the BPF parser has the same bounds or lower ones.
const (
	// MaxMsgLen is the largest message Parse takes: the largest UDP payload
	// fits, and every offset fits a Span.
	MaxMsgLen = 65535
	// MaxHeaders is the number of header lines a message may have.
	MaxHeaders = 128
	// MaxLineLen bounds a header line, folded continuation lines included,
	// and the start line.
	MaxLineLen = 8192
	// MaxVias, MaxRoutes and MaxRecordRoutes bound the values of those
	// comma-separated headers, summed over all their lines.
	MaxVias         = 64
	MaxRoutes       = 32
	MaxRecordRoutes = 32
	// MaxParams bounds the parameters of one Via value.
	MaxParams = 24
)

// Framing errors: Parse returns one of them when the message cannot be
// framed. The Msg is then only partly filled.
var (
	ErrEmpty          = errors.New("sipmsg: empty message")
	ErrKeepalive      = errors.New("sipmsg: only CRLF (keepalive)")
	ErrTooLong        = errors.New("sipmsg: message longer than MaxMsgLen")
	ErrStartLine      = errors.New("sipmsg: malformed start line")
	ErrLineEnding     = errors.New("sipmsg: line not ended by CRLF")
	ErrLineTooLong    = errors.New("sipmsg: line longer than MaxLineLen")
	ErrHeaderLine     = errors.New("sipmsg: malformed header line")
	ErrTooManyHeaders = errors.New("sipmsg: more than MaxHeaders header lines")
	ErrTooManyValues  = errors.New("sipmsg: too many Via, Route or Record-Route values")
	ErrNoEndOfHeaders = errors.New("sipmsg: no empty line after the headers")
)

// Field errors: recorded in a field's Err (or Msg.StartErr); Parse still
// returns nil for them.
var (
	ErrRequestURI    = errors.New("sipmsg: malformed Request-URI")
	ErrVersion       = errors.New("sipmsg: malformed SIP version")
	ErrStatus        = errors.New("sipmsg: malformed status code")
	ErrMethod        = errors.New("sipmsg: malformed method")
	ErrVia           = errors.New("sipmsg: malformed Via")
	ErrTooManyParams = errors.New("sipmsg: too many Via parameters")
	ErrURI           = errors.New("sipmsg: malformed URI")
	ErrNameAddr      = errors.New("sipmsg: malformed name-addr")
	ErrCallID        = errors.New("sipmsg: empty Call-ID")
	ErrCSeq          = errors.New("sipmsg: malformed CSeq")
	ErrMaxForwards   = errors.New("sipmsg: malformed Max-Forwards")
	ErrContentLength = errors.New("sipmsg: malformed Content-Length")
)
