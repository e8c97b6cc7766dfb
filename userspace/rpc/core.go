package rpc

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"
)

// ctimeLayout is C's ctime(3) format without the newline, which Kamailio's
// core.uptime prints.
const ctimeLayout = "Mon Jan _2 15:04:05 2006"

// Uptime is core.uptime's result, in Kamailio's field order.
type Uptime struct {
	Now     string `json:"now"`      // current local time, ctime format
	UpSince string `json:"up_since"` // start time, ctime format
	Uptime  int64  `json:"uptime"`   // whole seconds since start
}

// RegisterCore registers core.version, core.uptime and system.listMethods.
// version is the release, "0.1.0" ("sipedge 0.1.0" is taken as the same);
// started is the process start time.
func RegisterCore(s *Server, version string, started time.Time) {
	registerCore(s, version, started, time.Now)
}

func registerCore(s *Server, version string, started time.Time, now func() time.Time) {
	version = strings.TrimPrefix(version, "sipedge ")
	versionString := fmt.Sprintf("sipedge %s (%s/%s)", version, runtime.GOOS, runtime.GOARCH)
	s.Register("core.version", func(context.Context, Params) (any, error) {
		return versionString, nil
	})
	s.Register("core.uptime", func(context.Context, Params) (any, error) {
		t := now()
		return Uptime{
			Now:     t.Format(ctimeLayout),
			UpSince: started.Format(ctimeLayout),
			Uptime:  int64(t.Sub(started) / time.Second),
		}, nil
	})
	s.Register("system.listMethods", func(context.Context, Params) (any, error) {
		return s.Methods(), nil
	})
}
