package rpc

import "context"

// DlgsLimit is one rule of dlgs.limits, in config order; rules with max 0
// (off) are not listed.
type DlgsLimit struct {
	Index int `json:"index"` // in dialogs.limits
	// Kind is what the rule counts: "source" (each address apart), "set"
	// or "tag"; Match the rule's source prefix ("any"), set id or tag.
	Kind   string `json:"kind"`
	Match  string `json:"match"`
	Max    int    `json:"max"` // 0: unlimited
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	// Count is the live dialogs of the rule's set or tag now; for a source
	// rule, how many of the sources it covers are at its limit.
	Count int `json:"count"`
	// Refused counts the INVITEs the rule answered since the limits were
	// loaded (a reload that changes them restarts it).
	Refused uint64 `json:"refused"`
}

// DlgsLimits is dlgs.limits.
type DlgsLimits struct {
	Rules []DlgsLimit `json:"rules"` // [] when none
	// FastPathBlocked is how many verdicts the agent keeps for the fast
	// path's limit_block (sources and sets at a limit, and "all" while a
	// tag is); 0 without a fast path.
	FastPathBlocked int `json:"fastpath_blocked"`
}

// RegisterDialogLimits registers dlgs.limits on s; limits nil (dialog
// tracking off) answers the fault the other dlgs methods answer then.
func RegisterDialogLimits(s *Server, limits func() DlgsLimits) {
	if limits == nil {
		s.Register("dlgs.limits", func(context.Context, Params) (any, error) {
			return nil, Errorf(CodeFault, msgDlgsOff, "dialogs.enabled is false in the config")
		})
		return
	}
	s.Register("dlgs.limits", func(context.Context, Params) (any, error) { return limits(), nil })
}
