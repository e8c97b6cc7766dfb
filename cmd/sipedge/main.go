// Command sipedge is the SIP edge load balancer agent: Kamailio's dispatcher
// re-built in Go, with stateless UDP forwarding on a user-space slow path and
// (where XDP is available) an in-kernel fast path. The lifecycle lives in
// userspace/agent; this is flags and signals.
//
//	sipedge [-c FILE]          run (the embedded default config without -c)
//	sipedge check [-c FILE]    validate the config and the dispatcher list, start nothing
//	sipedge version
//
// Signals: SIGTERM and SIGINT stop the agent (within agent.DefaultStopTimeout);
// SIGHUP reloads the config and the dispatcher list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sipedge/sipedge/userspace/agent"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "check" || args[0] == "run" || args[0] == "version") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("sipedge "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("c", "", "config file (YAML); without it the embedded default config runs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sipedge: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	switch cmd {
	case "version":
		if err := agent.WriteVersion(stdout, version); err != nil {
			fmt.Fprintf(stderr, "sipedge: version: %v\n", err)
			return 1
		}
		return 0
	case "check":
		if err := agent.Check(context.Background(), *configPath, stdout); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		return 0
	}

	// SIGHUP is caught from the start: a reload asked for while the agent
	// starts is applied once it runs, never taken as the default (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := agent.Run(ctx, agent.Options{ConfigPath: *configPath, Version: version, Log: stderr, Reload: hup})
	if err != nil {
		fmt.Fprintf(stderr, "sipedge: %v\n", err)
		return 1
	}
	return 0
}
