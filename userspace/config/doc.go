// Package config loads sipedge's configuration: one YAML file (sipedge.yaml)
// and the Kamailio-format dispatcher.list it names.
//
// Loading is strict and reports every problem at once. The YAML is decoded
// node by node (go.yaml.in/yaml/v3), so an unknown or repeated key, or a
// value of the wrong type, is an error with its line; Validate then checks
// the values and their relations. Each error is a *Error reading
// FILE:LINE: key.path: what is wrong, and Load joins them (errors.Join) in
// line order:
//
//	sipedge.yaml:14: rules[0].algorithm: algorithm 12 (parallel forking) is not supported yet
//	dispatcher.list:7: set id must be a number, got "sip:10.0.0.1"
//
// Files:
//   - config.go: types and defaults
//   - load.go: strict decode, then Validate
//   - validate.go: value and cross-reference checks; the dialogs section's
//     (package dialogattr compiles what it accepts: Dialogs.DialogAttrs)
//   - params.go: the hash_pvar check (templates are package pvar's) and
//     the ds_ping_reply_codes grammar
//   - dslist.go: the dispatcher.list parser
//   - file.go: reading files: regular only, bounded size, a deadline; the
//     text check (UTF-8, no control characters) with line and column
//   - reload.go: which keys a reload applies (Reloaded), the HTTP token
//   - testdata/: good and bad files; the tests hold the expected errors
//
// docs/config.md is the reference for every key and for the differences
// from Kamailio's dispatcher.list parser.
package config
