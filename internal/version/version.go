// Package version says which build of sluice is running: the version
// stamped at link time, else what the Go toolchain recorded (the module
// version, or the VCS revision of the checkout it was built in).
package version

import (
	"runtime/debug"
	"strings"
)

// stamp is set at link time by deploy/build-image.sh and by anyone who
// builds a release:
//
//	go build -ldflags "-X sluice/internal/version.stamp=v1.2.3" ./cmd/sluice
//
// The linker can only set a package-level string, which is why this one
// variable exists; nothing writes it at run time.
var stamp string

// Info is one build's identity.
type Info struct {
	// Version is the stamped version, else the module's version, else
	// "devel+<revision>" (with "-dirty" for uncommitted changes) when
	// built from a checkout, else "devel".
	Version string
	// Revision and Time are the VCS commit and its time, when the build
	// recorded them; Modified means the tree had uncommitted changes.
	Revision, Time string
	Modified       bool
	GoVersion      string
}

// Get reads the running binary's build.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	return from(stamp, bi, ok)
}

// from is Get with its inputs explicit, for tests.
func from(stamp string, bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: "devel", GoVersion: "unknown"}
	if ok {
		in.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
		switch {
		case bi.Main.Version != "" && bi.Main.Version != "(devel)":
			// go build in a checkout records a pseudo-version such as
			// v0.0.0-20260101120000-abcdef123456+dirty.
			in.Version = bi.Main.Version
		case in.Revision != "":
			in.Version = "devel+" + short(in.Revision)
			if in.Modified {
				in.Version += "-dirty"
			}
		}
	}
	if s := strings.TrimSpace(stamp); s != "" {
		in.Version = s
	}
	return in
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// String is the one line `sluice version` prints.
func (in Info) String() string {
	var b strings.Builder
	b.WriteString("sluice ")
	b.WriteString(in.Version)
	if in.Revision != "" && !strings.Contains(in.Version, short(in.Revision)) {
		b.WriteString(" (" + short(in.Revision))
		if in.Modified {
			b.WriteString(", modified")
		}
		b.WriteString(")")
	}
	if in.Time != "" {
		b.WriteString(" committed " + in.Time)
	}
	b.WriteString(" " + in.GoVersion)
	return b.String()
}
