package sipp

// The scenarios of the fast path's dialog-tracking tests: one server for
// five kinds of call, and a client per kind that the server does not
// answer like uac_rr.xml. The client's service (-s) names the kind, and
// the server branches on it (testdata/dlg_fast_uas.xml). The answered
// kind is UACRecordRoute run with -s answer.
var (
	// DlgFastUAS answers by the INVITE's Request-URI user: answer,
	// reject (486), cancel (180, then the CANCEL's 200 and 487), noack
	// (180, 200, expects nothing more) and byelost (180, 200, ACK).
	DlgFastUAS = Scenario{file: "dlg_fast_uas.xml"}
	// DlgFastUACReject expects 486 and ACKs it.
	DlgFastUACReject = Scenario{file: "dlg_fast_uac_reject.xml"}
	// DlgFastUACCancel cancels after the 180, expects the CANCEL's 200
	// and the 487, and ACKs the 487.
	DlgFastUACCancel = Scenario{file: "dlg_fast_uac_cancel.xml"}
	// DlgFastUACNoAck ends at the 200 without ACKing it.
	DlgFastUACNoAck = Scenario{file: "dlg_fast_uac_noack.xml"}
	// DlgFastUACByeLost ACKs the 200 (honouring Record-Route) and ends
	// without a BYE.
	DlgFastUACByeLost = Scenario{file: "dlg_fast_uac_byelost.xml"}
)

// DlgFastKind is one kind of call of the dialog-tracking tests: the
// client's service (-s, the server's branch) and scenario.
type DlgFastKind struct {
	Service  string
	Scenario Scenario
	// Requests are the requests of one call the server receives, by
	// method; Responses the responses it sends, by status.
	Requests  map[string]int
	Responses map[int]int
}

// DlgFastKinds are the five kinds, in the order the tests report them.
var DlgFastKinds = []DlgFastKind{
	{"answer", UACRecordRoute, map[string]int{"INVITE": 1, "ACK": 1, "BYE": 1}, map[int]int{180: 1, 200: 2}},
	{"reject", DlgFastUACReject, map[string]int{"INVITE": 1, "ACK": 1}, map[int]int{486: 1}},
	{"cancel", DlgFastUACCancel, map[string]int{"INVITE": 1, "CANCEL": 1, "ACK": 1}, map[int]int{180: 1, 200: 1, 487: 1}},
	{"noack", DlgFastUACNoAck, map[string]int{"INVITE": 1}, map[int]int{180: 1, 200: 1}},
	{"byelost", DlgFastUACByeLost, map[string]int{"INVITE": 1, "ACK": 1}, map[int]int{180: 1, 200: 1}},
}
