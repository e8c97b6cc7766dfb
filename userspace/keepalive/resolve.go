package keepalive

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Resolution of destinations written with a host name. A name is resolved
// off the probe goroutine, on goroutines of Run, each lookup bounded by
// resolveTimeout. Until it resolves, a destination is not probed; each
// failed lookup of a destination that never resolved counts as a failed
// probe (down, Code 0, the error as Reason), so the failure shows in its
// state and is logged once, on the change, not at every attempt. A name
// that resolved once keeps its address when a later lookup fails (a DNS
// outage does not take a live destination down); lookups are repeated
// every ping_interval while failing and every max(ping_interval,
// reresolveEvery) after, so an address change is followed.
const (
	maxResolveTimeout = 5 * time.Second
	reresolveEvery    = time.Minute
	// maxLookups bounds the lookups in progress.
	maxLookups = 8
)

// Run resolves host names until ctx ends, then returns nil once its
// lookups have ended. Destinations with IP literals need no Run.
func (m *Module) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxLookups)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		for _, job := range m.dueLookups() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				m.cancelLookup(job.d)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				m.lookup(ctx, job)
			}()
		}
		timer.Reset(m.nextLookup())
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-timer.C:
		}
	}
}

type lookupJob struct {
	d       *dest
	host    string
	port    int
	timeout time.Duration
}

// dueLookups marks the destinations whose lookup is due as resolving and
// returns them.
func (m *Module) dueLookups() []lookupJob {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var jobs []lookupJob
	for _, d := range m.dests {
		if d.target.literal.IsValid() || d.resolving || d.nextResolve.After(now) {
			continue
		}
		d.resolving = true
		jobs = append(jobs, lookupJob{d: d, host: d.target.host, port: d.target.port, timeout: min(m.p.Interval, maxResolveTimeout)})
	}
	return jobs
}

func (m *Module) cancelLookup(d *dest) {
	m.mu.Lock()
	d.resolving = false
	m.mu.Unlock()
	m.wake()
}

// nextLookup is how long Run may sleep.
func (m *Module) nextLookup() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	wait := time.Hour
	for _, d := range m.dests {
		if d.target.literal.IsValid() || d.resolving {
			continue
		}
		wait = min(wait, max(d.nextResolve.Sub(now), time.Millisecond))
	}
	return wait
}

// lookup resolves one host and applies the outcome.
func (m *Module) lookup(ctx context.Context, job lookupJob) {
	lctx, cancel := context.WithTimeout(ctx, job.timeout)
	addrs, err := m.resolve(lctx, job.host)
	cancel()
	if ctx.Err() != nil {
		m.cancelLookup(job.d)
		return
	}
	var addr netip.AddrPort
	switch {
	case err != nil:
	case len(addrs) == 0:
		err = errors.New("no address")
	default:
		addr = netip.AddrPortFrom(addrs[0].Unmap(), uint16(job.port))
	}
	m.resolved(job.d, addr, err)
}

// resolved applies a lookup's outcome to d.
func (m *Module) resolved(d *dest, addr netip.AddrPort, err error) {
	defer m.wake() // Run schedules d's next lookup
	m.mu.Lock()
	d.resolving = false
	if m.byKey[d.key] != d {
		m.mu.Unlock() // removed meanwhile
		return
	}
	now := m.now()
	if err != nil {
		d.nextResolve = now.Add(m.p.Interval)
		if d.addr.IsValid() {
			// Keep probing the old address; try again next interval.
			m.mu.Unlock()
			return
		}
		m.applyLocked(d, false, 0, fmt.Sprintf("resolve %s: %v", d.target.host, err))
		return
	}
	d.nextResolve = now.Add(max(m.p.Interval, reresolveEvery))
	if addr == d.addr {
		m.mu.Unlock()
		return
	}
	first := !d.set
	d.addr = addr
	if serr := m.prober.Set(d.key, m.probe(d, first)); serr != nil {
		d.addr = netip.AddrPort{}
		if d.set {
			m.prober.Remove(d.key)
			d.set = false
		}
		d.nextResolve = now.Add(m.p.Interval)
		m.applyLocked(d, false, 0, fmt.Sprintf("probe %s (%s): %v", d.uri, addr, serr))
		return
	}
	d.set = true
	m.mu.Unlock()
}

// wake makes Run look for lookups to start. Called with or without mu.
func (m *Module) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}
