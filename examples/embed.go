// Package examples holds sipedge's example configuration: sipedge.yaml and
// the dispatcher.list it names. The agent runs them, embedded, when it is
// started without -c; docs/config.md explains every key.
package examples

import "embed"

// FS holds sipedge.yaml and dispatcher.list. Load it with
// config.LoadFS(examples.FS, "sipedge.yaml").
//
//go:embed sipedge.yaml dispatcher.list
var FS embed.FS
