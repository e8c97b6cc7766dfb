package dispatch

// Failover returns the destinations to try, in order, when pick is the
// picked index (ds_manage_routes_fill_xavp): the pick, then the higher
// indices ascending, then 0..pick-1, then the default last when use_default
// is on and it was not the pick. Down destinations are skipped (Kamailio
// appends the default even when it is down; sipedge does not). limit caps
// the count, the pick and the default included; the default only gets in if
// room is left. 0 or less means no cap. An out-of-range pick gives nil.
func (s *Set) Failover(pick, limit int) []Destination {
	n := len(s.Dests)
	if pick < 0 || pick >= n {
		return nil
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]Destination, 0, limit)
	out = append(out, s.Dests[pick])
	add := func(i int) {
		if len(out) < limit && i != s.DefaultIdx && s.Dests[i].Up() {
			out = append(out, s.Dests[i])
		}
	}
	for i := pick + 1; i < n; i++ {
		add(i)
	}
	for i := 0; i < pick; i++ {
		add(i)
	}
	if d := s.DefaultIdx; d >= 0 && d != pick && len(out) < limit && s.Dests[d].Up() {
		out = append(out, s.Dests[d])
	}
	return out
}
