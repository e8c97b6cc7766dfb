package bench

import (
	"fmt"
	"github.com/cilium/ebpf"
	"os"
	"testing"
	"time"

	"github.com/sipedge/sipedge/userspace/dataplane"
	"github.com/sipedge/sipedge/userspace/dataplane/dptest"
	"net/netip"
)

func TestExpStages(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	for _, obj := range []string{"/tmp/stop3.o", "/tmp/stop4.o", "/tmp/stop5.o", "/tmp/nocsum.o", "/tmp/full.o"} {
		env := dptest.NewEnvWith(t, dataplane.Options{ObjectPath: obj}, netip.MustParsePrefix("10.0.0.0/8"))
		setupEnv(t, env)
		floor := floorProgram(t)
		line := obj
		for _, m := range messages() {
			frame := frameOf(env, m)
			env.Time(env.DP.Program(), frame, 2000)
			p, _, _ := env.Time(env.DP.Program(), frame, 20000)
			b, _, _ := env.Time(floor, frame, 20000)
			line += fmt.Sprintf(" %s=%d", m.name, (p - b).Nanoseconds())
		}
		t.Log(line)
	}
}

func TestExpWarm(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	for _, obj := range []string{"/tmp/pstop2.o", "/tmp/stop3.o"} {
		env := dptest.NewEnvWith(t, dataplane.Options{ObjectPath: obj}, netip.MustParsePrefix("10.0.0.0/8"))
		setupEnv(t, env)
		floor := floorProgram(t)
		line := obj
		for _, m := range messages() {
			frame := frameOf(env, m)
			var p, b time.Duration
			env.Do(func() {
				_, p, _ = env.DP.Program().Benchmark(frame, 200000, nil)
				_, b, _ = floor.Benchmark(frame, 200000, nil)
			})
			line += fmt.Sprintf(" %s=%d(floor %d)", m.name, (p - b).Nanoseconds(), b.Nanoseconds())
		}
		t.Log(line)
	}
}

func TestExpLive(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	env := dptest.NewEnvWith(t, dataplane.Options{}, netip.MustParsePrefix("10.0.0.0/8"))
	setupEnv(t, env)
	line := "live"
	for _, m := range messages() {
		frame := frameOf(env, m)
		in := env.SideOf(m.src.Addr())
		var d time.Duration
		var err error
		env.Do(func() {
			opts := &ebpf.RunOptions{Data: frame, Repeat: 200000, Flags: 2, /* BPF_F_TEST_XDP_LIVE_FRAMES */
				Context: struct{ A, B, C, D, E, F uint32 }{0, uint32(len(frame)), 0, uint32(in.Index), 0, 0}}
			st := time.Now()
			_, err = env.DP.Program().Run(opts)
			d = time.Since(st) / 200000
		})
		if err != nil {
			t.Fatal(err)
		}
		line += fmt.Sprintf(" %s=%d", m.name, d.Nanoseconds())
		pc, _ := env.DP.PassCounts()
		ls, _ := env.DP.ListenerStats(0)
		dc, _ := env.DP.DropCounts()
		t.Logf("%s pass=%v drop=%v lis=%+v", m.name, nonZero(pc), nonZero(dc), ls)
	}
	t.Log(line)
}
