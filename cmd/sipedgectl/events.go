package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sipedge/sipedge/userspace/rpc"
)

// streamEvents runs "sipedgectl events": events.subscribe with the
// prefixes, then each record printed as one JSON line, flushed as it
// comes. timeout bounds connecting and the subscription's answer only.
// It returns exitOK when ctx ends (SIGINT, SIGTERM), exitRPCError when
// the agent refuses the subscription or closes the stream (it stopped),
// exitUsage when it cannot be reached.
func streamEvents(ctx context.Context, prefixes []any, timeout time.Duration, stdout, stderr io.Writer,
	connect func(context.Context) (*rpc.Client, string, error)) int {
	for i, p := range prefixes {
		if _, ok := p.(string); !ok {
			prefixes[i] = fmt.Sprint(p) // a prefix is text, even "123"
		}
	}
	dialCtx, cancelDial := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		dialCtx, cancelDial = context.WithTimeout(ctx, timeout)
	}
	client, target, err := connect(dialCtx)
	if err != nil {
		cancelDial()
		fmt.Fprintf(stderr, "sipedgectl: %v\n", err)
		return exitUsage
	}
	defer client.Close()
	// Until the answer, the timeout applies; after it, only ctx.
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	subscribed := make(chan struct{})
	go func() {
		select {
		case <-subscribed:
		case <-streamCtx.Done(): // the stream ended before its answer
		case <-dialCtx.Done():
			if ctx.Err() == nil && !isClosed(subscribed) {
				cancel()
			}
		}
	}()
	defer cancelDial()
	err = client.Stream(streamCtx, "events.subscribe", prefixes,
		func(json.RawMessage) { close(subscribed) },
		func(rec json.RawMessage) error {
			if _, err := stdout.Write(append(rec, '\n')); err != nil {
				return fmt.Errorf("print: %w", err)
			}
			return nil
		})
	var rerr *rpc.Error
	switch {
	case ctx.Err() != nil:
		return exitOK // interrupted: the normal way to stop
	case errors.Is(err, rpc.ErrStreamClosed):
		fmt.Fprintf(stderr, "sipedgectl: %s: the agent closed the event stream (stopped?)\n", target)
		return exitRPCError
	case errors.As(err, &rerr):
		fmt.Fprintf(stderr, "sipedgectl: events.subscribe: error %d: %s", rerr.Code, rerr.Message)
		if rerr.Data != "" {
			fmt.Fprintf(stderr, " (%s)", rerr.Data)
		}
		fmt.Fprintln(stderr)
		return exitRPCError
	case !isClosed(subscribed):
		fmt.Fprintf(stderr, "sipedgectl: %s: events.subscribe: %v\n", target, err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "sipedgectl: %s: event stream: %v\n", target, err)
		return exitRPCError
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
