package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sipedge/sipedge/userspace/rpc"
)

// DefaultSocket is where sipedge listens unless configured otherwise.
const DefaultSocket = "/run/sipedge/sipedge.sock"

// Exit statuses.
const (
	exitOK       = 0
	exitRPCError = 1 // the server answered with an error
	exitUsage    = 2 // bad command line, or the server could not be reached
)

const usageText = `usage: sipedgectl [-s SOCKET | -H URL [-token-file FILE]] [-t] [-timeout D] METHOD [PARAMS...]
       sipedgectl [-s SOCKET | -H URL [-token-file FILE]] [-timeout D] events [PREFIX...]

Calls METHOD on a running sipedge and prints the result as JSON.

"events" streams the agent's events (dispatcher:dst-down, dispatcher:dst-up,
...) as JSON lines, those whose name starts with a PREFIX if any are given,
until interrupted (exit 0) or the agent stops (exit 1). -timeout bounds only
the subscription.

PARAMS are sent positionally. As with kamctl, a word that looks like an
integer is sent as a JSON number; prefix it with s: to send a string
(s:5080) and with i: to force an integer (i:007).

Examples:
  sipedgectl dispatcher.list
  sipedgectl -t dispatcher.list full
  sipedgectl dispatcher.set_state ip 2 sip:127.0.0.1:5080
  sipedgectl dispatcher.hash 100 s:a84b4c76e66710@pc33.atlanta.com
  sipedgectl system.listMethods
  sipedgectl events dispatcher:

Options:
`

// run is the whole command; main only wires the process to it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("sipedgectl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("s", "", "unix socket of sipedge's RPC (default $SIPEDGE_SOCKET, else "+DefaultSocket+")")
	httpURL := fs.String("H", "", "call over HTTP instead, e.g. http://127.0.0.1:5071/RPC")
	tokenFile := fs.String("token-file", "", "with -H: send the token in this file as a bearer token (default $SIPEDGE_TOKEN_FILE)")
	table := fs.Bool("t", false, "print the result as a table")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long (0: never)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sipedgectl: "+format+"\n", a...)
		fmt.Fprintln(stderr, "run sipedgectl -h for usage")
		return exitUsage
	}
	if fs.NArg() == 0 {
		return usageErr("no METHOD given")
	}
	if *socket != "" && *httpURL != "" {
		return usageErr("-s and -H exclude each other")
	}
	if *tokenFile != "" && *httpURL == "" {
		return usageErr("-token-file is for -H: the unix socket needs none")
	}
	method := fs.Arg(0)
	params, err := convertArgs(fs.Args()[1:])
	if err != nil {
		return usageErr("%v", err)
	}

	if method == "events.subscribe" {
		// A stream never ends on its own: the plain call would wait for ever.
		return usageErr("events.subscribe is a stream: use sipedgectl events [PREFIX...]")
	}
	if method == "events" {
		if *table {
			return usageErr("-t does not apply to events: they print as JSON lines")
		}
		return streamEvents(ctx, params, *timeout, stdout, stderr, func(ctx context.Context) (*rpc.Client, string, error) {
			return connect(ctx, *socket, *httpURL, *tokenFile, getenv)
		})
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	client, target, err := connect(ctx, *socket, *httpURL, *tokenFile, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "sipedgectl: %v\n", err)
		return exitUsage
	}
	defer client.Close()

	result, err := client.Call(ctx, method, params...)
	if err != nil {
		var rerr *rpc.Error
		if errors.As(err, &rerr) {
			fmt.Fprintf(stderr, "sipedgectl: %s: error %d: %s", method, rerr.Code, rerr.Message)
			if rerr.Data != "" {
				fmt.Fprintf(stderr, " (%s)", rerr.Data)
			}
			fmt.Fprintln(stderr)
			return exitRPCError
		}
		fmt.Fprintf(stderr, "sipedgectl: %s: %v\n", target, err)
		return exitUsage
	}

	if *table {
		err = writeTable(stdout, method, result)
	} else {
		err = writeJSON(stdout, result)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sipedgectl: print %s result: %v\n", method, err)
		return exitUsage
	}
	return exitOK
}

// connect opens the client the flags ask for and names its target for
// error messages.
func connect(ctx context.Context, socket, httpURL, tokenFile string, getenv func(string) string) (*rpc.Client, string, error) {
	if httpURL != "" {
		u, err := url.Parse(httpURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, "", fmt.Errorf("-H %q: want a URL like http://127.0.0.1:5071/RPC", httpURL)
		}
		c := rpc.NewHTTPClient(httpURL, nil)
		if tokenFile == "" {
			tokenFile = getenv("SIPEDGE_TOKEN_FILE")
		}
		if tokenFile != "" {
			tok, err := readToken(tokenFile)
			if err != nil {
				return nil, "", err
			}
			c.SetToken(tok)
		}
		return c, httpURL, nil
	}
	if socket == "" {
		socket = getenv("SIPEDGE_SOCKET")
	}
	if socket == "" {
		socket = DefaultSocket
	}
	client, err := rpc.Dial(ctx, socket)
	if err != nil {
		return nil, "", fmt.Errorf("%w\nis sipedge running? the socket can be set with -s or SIPEDGE_SOCKET", err)
	}
	return client, socket, nil
}

// maxToken bounds the token file (as the agent's control.http_token_file).
const maxToken = 4096

// readToken reads a token file: a regular file of at most maxToken bytes,
// its text without surrounding blanks.
func readToken(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", fmt.Errorf("read token file %s: %w", p, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > maxToken {
		return "", fmt.Errorf("read token file %s: want a regular file of at most %d bytes", p, maxToken)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxToken))
	if err != nil {
		return "", fmt.Errorf("read token file %s: %w", p, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("read token file %s: empty", p)
	}
	return tok, nil
}

// writeJSON prints the result indented, keys in the server's order.
func writeJSON(w io.Writer, result json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, result, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}
