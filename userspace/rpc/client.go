package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Client calls methods on a sipedge RPC server, over its unix socket (Dial)
// or over HTTP (NewHTTPClient). Calls on one Client are serialised. A
// failed call returns an *Error when the server answered with one, and a
// plain error when the transport failed or the answer was not JSON-RPC.
type Client struct {
	// unix socket transport
	conn   net.Conn
	dec    *json.Decoder
	broken error // a failed exchange leaves the stream out of step

	// HTTP transport
	url   string
	hc    *http.Client
	token string

	mu     sync.Mutex
	nextID int64
}

// Dial connects to the unix socket at path.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to rpc socket %s: %w", path, err)
	}
	return &Client{conn: conn, dec: json.NewDecoder(conn)}, nil
}

// NewHTTPClient calls the server at url (e.g. "http://127.0.0.1:5071/RPC").
// A nil hc means http.DefaultClient.
func NewHTTPClient(url string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{url: url, hc: hc}
}

// SetToken makes HTTP calls send "Authorization: Bearer token".
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = token
}

// Close closes the connection, if any.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Call runs method with positional params and returns the raw result, with
// the server's key order intact. Params are marshalled with encoding/json;
// json.Number sends a number with its literal text.
func (c *Client) Call(ctx context.Context, method string, params ...any) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := c.request(method, params)
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", method, err)
	}

	var body []byte
	if c.conn != nil {
		if c.broken != nil {
			return nil, fmt.Errorf("call %s: connection unusable after an earlier failure: %w", method, c.broken)
		}
		body, err = c.roundTripUnix(ctx, req)
		if err != nil {
			c.broken = err
		}
	} else {
		body, err = c.roundTripHTTP(ctx, req)
	}
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", method, err)
	}

	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
		ID     json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("call %s: answer is not a JSON-RPC response: %w", method, err)
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	if string(resp.ID) != strconv.FormatInt(c.nextID, 10) {
		return nil, fmt.Errorf("call %s: answer has id %s, want %d", method, resp.ID, c.nextID)
	}
	if resp.Result == nil {
		resp.Result = json.RawMessage("null")
	}
	return resp.Result, nil
}

func (c *Client) roundTripUnix(ctx context.Context, req []byte) ([]byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	} else {
		c.conn.SetDeadline(time.Time{})
	}
	// A cancelled ctx interrupts blocked reads and writes.
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := c.conn.Write(append(req, '\n')); err != nil {
		return nil, ioErr(ctx, "send", err)
	}
	var answer json.RawMessage
	if err := c.dec.Decode(&answer); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("server closed the connection")
		}
		return nil, ioErr(ctx, "read answer", err)
	}
	return answer, nil
}

func (c *Client) roundTripHTTP(ctx context.Context, req []byte) ([]byte, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer hresp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hresp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if hresp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("%s answered %s: %s", c.url, hresp.Status, bytes.TrimSpace(body))
	}
	// A fault sets the status line but still carries a JSON-RPC body.
	if !json.Valid(body) {
		return nil, fmt.Errorf("%s answered %s, not JSON-RPC: %.200q", c.url, hresp.Status, body)
	}
	return body, nil
}

// ioErr explains a failed read or write: the context's reason when it
// caused the failure, without net.OpError's addresses (the caller names the
// socket; the kernel reports the name the server bound before renaming).
func ioErr(ctx context.Context, what string, err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		err = op.Err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w (%w)", what, cerr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The deadline came from ctx, and fired before ctx noticed.
		return fmt.Errorf("%s: %w (%w)", what, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ErrStreamClosed is returned by Stream when the server ended the stream
// (it stopped).
var ErrStreamClosed = errors.New("the server closed the stream")

// Stream calls a streaming method (events.subscribe) and calls each with
// every record that follows its answer, until ctx ends (Stream returns
// ctx's error), the server closes the stream (ErrStreamClosed) or each
// fails (its error). The answer's error, if any, is returned as for Call.
// ready, when not nil, gets the answer's result first. Over the unix
// socket the Client's connection carries the stream and is unusable
// afterwards.
func (c *Client) Stream(ctx context.Context, method string, params []any, ready func(json.RawMessage), each func(json.RawMessage) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := c.request(method, params)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", method, err)
	}
	var dec *json.Decoder
	if c.conn != nil {
		if c.broken != nil {
			return fmt.Errorf("stream %s: connection unusable after an earlier failure: %w", method, c.broken)
		}
		c.broken = errors.New("the connection carried a stream")
		c.conn.SetDeadline(time.Time{})
		stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
		if _, err := c.conn.Write(append(req, '\n')); err != nil {
			return fmt.Errorf("stream %s: %w", method, ioErr(ctx, "send", err))
		}
		dec = c.dec
	} else {
		hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(req))
		if err != nil {
			return err
		}
		hreq.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			hreq.Header.Set("Authorization", "Bearer "+c.token)
		}
		hresp, err := c.hc.Do(hreq)
		if err != nil {
			return fmt.Errorf("stream %s: %w", method, err)
		}
		defer hresp.Body.Close()
		if hresp.StatusCode == http.StatusUnauthorized {
			body, _ := io.ReadAll(io.LimitReader(hresp.Body, 4096))
			return fmt.Errorf("stream %s: %s answered %s: %s", method, c.url, hresp.Status, bytes.TrimSpace(body))
		}
		dec = json.NewDecoder(hresp.Body)
	}
	readErr := func(what string, err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return ErrStreamClosed
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("stream %s: %w", method, ioErr(ctx, what, err))
	}
	var answer struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
		ID     json.RawMessage `json:"id"`
	}
	if err := dec.Decode(&answer); err != nil {
		return readErr("read answer", err)
	}
	if answer.Error != nil {
		return answer.Error
	}
	if string(answer.ID) != strconv.FormatInt(c.nextID, 10) {
		return fmt.Errorf("stream %s: answer has id %s, want %d", method, answer.ID, c.nextID)
	}
	if ready != nil {
		ready(answer.Result)
	}
	for {
		var rec json.RawMessage
		if err := dec.Decode(&rec); err != nil {
			return readErr("read record", err)
		}
		if err := each(rec); err != nil {
			return err
		}
	}
}

// request encodes the next request of the connection (c.mu held).
func (c *Client) request(method string, params []any) ([]byte, error) {
	c.nextID++
	if params == nil {
		params = []any{}
	}
	return encode(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  []any  `json:"params"`
		ID      int64  `json:"id"`
	}{"2.0", method, params, c.nextID})
}
