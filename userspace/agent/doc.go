// Package agent owns the lifecycle of sipedge's subsystems: it loads the
// config, builds the first snapshot (config and destination sets), starts
// the subsystems in dependency order, applies reloads all or nothing, and
// stops the subsystems in reverse order within a bounded time.
//
// A subsystem is a small interface (subsystem.go): Run(ctx) serves until
// ctx ends; Ready, when it has one, says when the next one may start; Apply
// takes each new snapshot. Today's order: the event hook (first to start,
// last to stop: it runs the others' events), the slow path (its sockets
// bound first, so that what the fast path passes up finds it ready), the
// XDP fast path, dialog tracking, the call-load timer, dispatcher probing,
// the keepalive module (keepalive.go), then the control server (JSON-RPC on
// the unix socket and HTTP).
// Every subsystem reads the destination sets through one
// dispatch.Dispatcher, which the agent swaps on reload.
//
// Reloads (reload.go) come from SIGHUP (Options.Reload: the config file
// and the dispatcher list) and from RPC dispatcher.reload (the list only,
// as in Kamailio). A reload reads and validates everything first and
// changes nothing unless all of it is good; a bad file keeps the old state
// and the error names FILE:LINE. Keys only a restart can apply are logged
// by name and keep their running value (config.Config.Reloaded).
//
// Stopping: when ctx ends or a subsystem fails, the subsystems are
// cancelled one by one in reverse order; all of them together get
// Options.StopTimeout, after which Run returns an error naming those still
// running, so the process exits whatever is in flight.
//
// Files:
//   - agent.go: Options, Run, start and bounded stop
//   - subsystem.go: the Subsystem interface and Snapshot
//   - wiring.go: the subsystems built from the config
//   - reload.go: SIGHUP and dispatcher.reload
//   - feed.go: the one adapter both paths feed with dialog messages, for
//     dialog tracking and call load (algorithm 10), which records the fast
//     path's alg 10 picks in the Call-ID table and hands the fast path the
//     slow path's; the call-load timer
//   - dialogs.go: dialog tracking (dlgs) and its templates
//   - probing.go: dispatcher probing (ds_ping_*) on the probe engine
//   - keepalive.go: the keepalive module on its own probe engine
//   - results.go: the queue carrying an engine's results to the goroutine
//     that applies them
//   - probestats.go: probe.stats
//   - events.go: the event stream, its RPC and the start-time dst-down
//   - check.go: sipedge check
package agent
