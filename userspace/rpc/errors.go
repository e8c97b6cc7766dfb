package rpc

import (
	"encoding/json"
	"fmt"
)

// JSON-RPC 2.0 error codes (https://www.jsonrpc.org/specification#error_object).
const (
	CodeParseError     = -32700 // the bytes are not JSON
	CodeInvalidRequest = -32600 // JSON, but not a request object
	CodeMethodNotFound = -32601 // no handler registered under the name
	CodeInvalidParams  = -32602 // wrong number or type of params
	CodeInternalError  = -32603 // the handler failed in a way it did not report (panic, bad result)
)

// CodeFault is Kamailio's application fault code. Its modules answer almost
// every failure with 500 and a fixed text ("No Destination Sets", "Invalid
// Parameters", …), unknown groups and destinations included; sipedge keeps
// those codes and texts, so scripts that match on them keep working, and puts
// the precise reason in Error.Data.
const CodeFault = 500

// Kamailio's fault texts for the dispatcher methods (dispatcher.c).
const (
	msgNoSets        = "No Destination Sets"
	msgOngoingReload = "Ongoing reload"
	msgReloadFailed  = "Reload Failed"
	msgUnknownState  = "Unknown State Value"
	msgStateFailed   = "State Update Failed"
	msgAddFailed     = "Adding dispatcher dst failed"
	msgRemoveFailed  = "Removing dispatcher dst failed"
)

// Error is a JSON-RPC error object. Handlers return it (directly or
// wrapped) to choose the code and text the client sees; any other error
// becomes a CodeFault with the error's text.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	// Data is the optional detail the specification allows: why the call
	// failed, beyond the fixed Message.
	Data string `json:"data,omitempty"`
}

// Errorf returns an *Error with a fixed message and formatted detail in Data.
func Errorf(code int, message, format string, args ...any) *Error {
	return &Error{Code: code, Message: message, Data: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Data == "" {
		return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("rpc error %d: %s: %s", e.Code, e.Message, e.Data)
}

// standardError builds one of the JSON-RPC 2.0 errors with the
// specification's text.
func standardError(code int, data string) *Error {
	msg := map[int]string{
		CodeParseError:     "Parse error",
		CodeInvalidRequest: "Invalid Request",
		CodeMethodNotFound: "Method not found",
		CodeInvalidParams:  "Invalid params",
		CodeInternalError:  "Internal error",
	}[code]
	return &Error{Code: code, Message: msg, Data: data}
}

// errorResponse is the wire form of a failed call.
type errorResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Error   *Error          `json:"error"`
	ID      json.RawMessage `json:"id"`
}

// resultResponse is the wire form of a successful call. Result has no
// omitempty: a nil result is sent as "result":null, as the spec requires.
type resultResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result"`
	ID      json.RawMessage `json:"id"`
}
