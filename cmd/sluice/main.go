// Command sluice is a flash-sale admission gate.
//
//	sluice serve      run the gate (embedded JetStream, demo sale) and the drain
//	sluice drain      run only the drain, beside gates that run --no-drain
//	sluice loadtest   rehearse a drop against a gate and check the outcome
//	sluice status     every sale of a running gate at a glance
//	sluice sale       make and change sales over the admin API
//	sluice dashboards export DIR
//	                  write the Grafana dashboards, provisioning, Prometheus
//	                  config and alerts into DIR
//	sluice pages export DIR
//	                  write the built-in HTML pages, templates for --pages
//	sluice draw verify, sluice line verify
//	                  check a waiting room's draw, and its line, from public
//	                  data alone
//	sluice healthcheck
//	                  exit 0 if the gate's ops listener says it is ready
//	sluice version    print the build
//
// Every flag of a command can also be set by the environment as
// SLUICE_<FLAG> (upper case, dashes as underscores) and in the YAML file
// given by --config; a flag beats the environment, which beats the file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"sluice/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) { // asking for help is not an error
		printError(os.Stderr, err)
		os.Exit(exitCode(err))
	}
}

// printError prints err after "sluice: ", each of several errors (a
// configuration's) on a line of its own.
func printError(w io.Writer, err error) {
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range multi.Unwrap() {
			printError(w, e)
		}
		return
	}
	fmt.Fprintln(w, "sluice:", err)
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 1
}

const usage = `sluice: a flash-sale admission gate

Usage:
  sluice serve [flags]     run the gate, and the drain unless --no-drain (see: sluice serve -h)
  sluice drain [flags]     run only the drain, against the gates' NATS (--nats-url)
  sluice loadtest [flags]  rehearse a drop against a gate and check the outcome
  sluice status [flags]    every sale of a running gate at a glance (--watch)
  sluice sale list|show|create|update|open|close [NAME] [flags]
                           make and change sales over the admin API
  sluice draw verify --sale NAME [--gate URL]
                           check a waiting room's draw from public data alone
  sluice line verify SALE [--target URL]
                           check a waiting room's line from its public log:
                           turns in draw order, never past the stock
  sluice dashboards export DIR
                           write the Grafana dashboards, their provisioning, a
                           Prometheus config and the alerting rules into DIR
  sluice pages export DIR  write the built-in HTML pages into DIR, the starting
                           point of your own (sluice serve --pages DIR)
  sluice healthcheck       exit 0 if the gate on --ops-listen is ready (for
                           an image's HEALTHCHECK, or a probe)
  sluice version           print the build (also: sluice --version)

Every command takes --help, and --check: parse and check its arguments
(the files and environment they name too) and exit, 0 if it would run with
them, having started, sent or written nothing (like nginx -t).

Examples:
  sluice serve
  sluice serve --config /etc/sluice/sluice.yaml --check
  sluice sale create drop --stock 500 --starts-at +1h
`

// parseFlags parses a command's flags. -h and --help print the command's
// usage (fs.Usage) once, to stdout, so that `sluice serve --help | less`
// shows it, and return flag.ErrHelp. A bad flag or value returns the
// flag package's error and a hint where the usage is, as the go tool
// does, instead of a hundred lines of usage that push the error away.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	usage := fs.Usage
	if usage == nil {
		usage = fs.PrintDefaults
	}
	// The flag package prints the usage itself on any error; print it
	// here instead, once, where it belongs.
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		usage()
		fs.SetOutput(stderr)
	case err != nil:
		return usageError(fs.Name(), err)
	}
	return err
}

// usageError is a command used wrongly: the error and where its usage
// is, as the go tool says it, not the usage itself.
func usageError(command string, err error) error {
	return &exitError{code: 2, err: &hinted{err: err, command: command}}
}

// hinted is an error followed by the line that says where the usage is.
type hinted struct {
	err     error
	command string
}

func (h *hinted) Error() string {
	return h.err.Error() + "\nRun '" + h.command + " --help' for usage."
}
func (h *hinted) Unwrap() error { return h.err }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: errors.New("no command")}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "drain":
		return runDrain(ctx, args[1:], stdout, stderr)
	case "loadtest":
		return runLoadtest(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "sale":
		return runSale(ctx, args[1:], stdout, stderr)
	case "dashboards":
		return runDashboards(args[1:], stdout, stderr)
	case "pages":
		return runPages(args[1:], stdout, stderr)
	case "draw":
		return runDraw(ctx, args[1:], stdout, stderr)
	case "line":
		return runLine(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version", "-v":
		fmt.Fprintln(stdout, version.Get())
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
}
