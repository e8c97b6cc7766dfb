package sipproxy

import (
	"log/slog"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// This is the only file that touches sipgo's process-wide knobs. sipgo keeps
// them as package variables; setting them once, here, keeps every other file
// free of hidden global state.

// sipgoTuneOnce guards the package-wide settings: several Proxies in one
// process (the tests start many) must not race on them.
var sipgoTuneOnce sync.Once

// tuneSipgo applies sipedge's settings to sipgo's globals.
func tuneSipgo(logger *slog.Logger) {
	sipgoTuneOnce.Do(func() {
		// Datagrams up to the IPv4 UDP maximum: a SIP INVITE with a large SDP
		// body must not be cut at the 1500-byte default.
		sip.UDPMTUSize = 65507
		sip.SIPDebug = false
		sip.SetDefaultLogger(logger.With("component", "sipgo"))
	})
}

// newTransportLayer builds the sipgo transport layer the proxy serves on.
// filter is the stateless contract: it consumes what it forwards and hands
// the rest to sipgo's parser and transaction layer.
func newTransportLayer(logger *slog.Logger, filter sip.TransportReadFilter) *sip.TransportLayer {
	return sip.NewTransportLayer(nil, sip.NewParser(),
		nil,
		sip.WithTransportLayerLogger(logger.With("component", "sipgo-transport")),
		sip.WithTransportLayerReadFilter(filter),
	)
}

// newTransactionLayer builds the transaction layer used by failover mode and
// by the agent's own requests.
func newTransactionLayer(logger *slog.Logger, tpl *sip.TransportLayer, unhandled func(*sip.Response)) *sip.TransactionLayer {
	return sip.NewTransactionLayer(tpl,
		sip.WithTransactionLayerLogger(logger.With("component", "sipgo-transaction")),
		sip.WithTransactionLayerUnhandledResponseHandler(unhandled),
	)
}
