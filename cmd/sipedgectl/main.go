// Command sipedgectl calls methods of a running sipedge over its JSON-RPC
// control socket (or HTTP), with Kamailio's method names:
//
//	sipedgectl dispatcher.list
//	sipedgectl -t dispatcher.list
//	sipedgectl dispatcher.set_state ip 2 sip:127.0.0.1:5080
//
// Run sipedgectl -h for the options; docs/rpc.md lists the methods.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
