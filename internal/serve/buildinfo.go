package serve

import (
	"github.com/prometheus/client_golang/prometheus"

	sluiceversion "sluice/internal/version"
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

// buildVersion is the version this binary was stamped with or built
// from (internal/version) and its Go version.
func buildVersion() (version, goversion string) {
	in := sluiceversion.Get()
	return in.Version, in.GoVersion
}
