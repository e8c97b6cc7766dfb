// Package rpc is sipedge's control interface: a JSON-RPC 2.0 server that
// speaks the wire format of Kamailio's jsonrpcs module, with Kamailio's
// method names (core.*, dispatcher.*) and result shapes, so that operators
// and their scripts keep working when they move from Kamailio to sipedge.
//
// Transports: a stream unix socket (mode 0600, one JSON value per request,
// one JSON line per answer; see ServeUnix) and HTTP POST /RPC on loopback
// (ServeHTTP, ListenHTTP, behind a bearer token unless HTTPAuth.None). Both
// bound request sizes and time out idle and slow clients (limits.go). Kamailio's FIFO and datagram transports are not
// offered. Params are positional; an object's values are taken in order and
// its names ignored, as jsonrpcs does.
//
// Handlers are plain functions registered by name (Register); the packages
// that own the state are wired in by RegisterCore and RegisterDispatcher, so
// this package holds no global state. Client is the matching client, used by
// sipedgectl and by tests.
//
// docs/rpc.md documents every method, its params and result shape.
package rpc
