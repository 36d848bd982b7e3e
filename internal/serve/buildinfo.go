package serve

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is sluice_build_info, registered by every role (gate, drain)
// so that dashboards can list instances by it.
func buildInfo(role string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_build_info",
		Help: "Build of the running sluice, by version, Go version and role (gate, drain, gate+drain); always 1.",
	}, []string{"version", "goversion", "role"})
	version, goversion := buildVersion()
	g.WithLabelValues(version, goversion, role).Set(1)
	return g
}

// buildVersion is the module version and Go version this binary was
// built from ("devel" when built from a checkout).
func buildVersion() (version, goversion string) {
	version, goversion = "devel", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goversion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
	}
	return version, goversion
}
