package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"sluice/dashboards"
)

const dashboardsUsage = `Usage: sluice dashboards export DIR

Writes the Grafana dashboards (*.json), Grafana provisioning files
(provisioning/), a Prometheus scrape config (prometheus.yml) and the
alerting rules with their tests (alerts.yml, alerts_test.yml) into DIR,
creating it if needed. Guide: docs/operations.md, "Watch it in Grafana".

Examples:
  sluice dashboards export /tmp/sluice-dashboards
  cd /tmp/sluice-dashboards && promtool test rules alerts_test.yml
`

func runDashboards(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "export" {
		args = args[1:]
	} else if len(args) == 0 || !isHelp(args[0]) {
		return usageError("sluice dashboards", errors.New("dashboards: want: export DIR"))
	}
	fs := flag.NewFlagSet("sluice dashboards export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), dashboardsUsage+"\nFlags:\n"); fs.PrintDefaults() }
	check := fs.Bool("check", false, checkHelp)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 1 { // flags after DIR
		dir := fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], stdout, stderr); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return &exitError{code: 2, err: fmt.Errorf("dashboards export: unexpected arguments %q", fs.Args())}
		}
		_ = fs.Parse([]string{dir})
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return usageError("sluice dashboards", errors.New("dashboards: want: export DIR"))
	}
	if *check {
		return checked(stdout, "dashboards export "+fs.Arg(0))
	}
	written, err := dashboards.Export(fs.Arg(0))
	if err != nil {
		return err
	}
	for _, p := range written {
		fmt.Fprintln(stdout, p)
	}
	return nil
}

// isHelp says whether arg asks for usage.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}
