package main

import (
	"errors"
	"fmt"
	"io"

	"sluice/dashboards"
)

const dashboardsUsage = `Usage: sluice dashboards export DIR

Writes the Grafana dashboards (*.json), Grafana provisioning files
(provisioning/), a Prometheus scrape config (prometheus.yml) and the
alerting rules with their tests (alerts.yml, alerts_test.yml) into DIR,
creating it if needed. See README, "Watch it in Grafana".
`

func runDashboards(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, dashboardsUsage)
		return nil
	}
	if len(args) != 2 || args[0] != "export" || args[1] == "" {
		fmt.Fprint(stderr, dashboardsUsage)
		return &exitError{code: 2, err: errors.New("dashboards: want: export DIR")}
	}
	written, err := dashboards.Export(args[1])
	if err != nil {
		return err
	}
	for _, p := range written {
		fmt.Fprintln(stdout, p)
	}
	return nil
}
