package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const healthcheckUsage = `Usage: sluice healthcheck [flags]

Asks a gate's ops listener whether it is ready (GET /readyz, or /healthz
with --live) and exits 0 if so, 1 if not: a container's HEALTHCHECK or a
probe needs no curl in an image that holds only sluice. It reads the same
--ops-listen, SLUICE_OPS_LISTEN and --config as the gate it checks.

Examples:
  sluice healthcheck
  sluice healthcheck --config /etc/sluice/sluice.yaml --live

Flags:
`

func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice healthcheck", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), healthcheckUsage); fs.PrintDefaults() }
	var (
		configPath, ops string
		live            bool
		timeout         time.Duration
	)
	fs.StringVar(&configPath, "config", "", "the gate's YAML config file, for its ops_listen")
	fs.StringVar(&ops, "ops-listen", "127.0.0.1:9464", "the gate's ops `address`")
	fs.BoolVar(&live, "live", false, "ask only whether the process is up (/healthz), not whether it is ready")
	fs.DurationVar(&timeout, "timeout", 3*time.Second, "longest wait for the answer")
	check := fs.Bool("check", false, checkHelp)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("healthcheck: unexpected arguments %q", fs.Args())}
	}
	// The gate's file holds every other key of serve: they are not ours.
	ignored := map[string]bool{}
	if configPath != "" {
		if raw, err := os.ReadFile(configPath); err == nil {
			var file map[string]any
			_ = yaml.Unmarshal(raw, &file)
			for k := range file {
				ignored[strings.ReplaceAll(k, "-", "_")] = true
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) { delete(ignored, strings.ReplaceAll(f.Name, "-", "_")) })
	if err := layer(fs, configPath, map[string]any{}, ignored); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("healthcheck: %w", err)}
	}
	if _, _, err := net.SplitHostPort(ops); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("healthcheck: --ops-listen %q: %w", ops, err)}
	}
	if *check {
		return checked(stdout, "healthcheck of "+dialable(ops))
	}
	path := "/readyz"
	if live {
		path = "/healthz"
	}
	url := "http://" + dialable(ops) + path
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("healthcheck: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("healthcheck: %w", err)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: 1, err: errors.New("healthcheck: " + url + ": " + resp.Status + ": " + strings.TrimSpace(string(body)))}
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, strings.TrimSpace(string(body)))
	return nil
}

// dialable turns a listen address into one to dial: a gate listening on
// every interface (":9464", "0.0.0.0:9464", "[::]:9464") is reached on
// loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
