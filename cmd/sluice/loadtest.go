package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"sluice/loadtest"
)

// exitThresholds is the exit status of a run that missed a --threshold:
// k6's (ThresholdsHaveFailed), so CI scripts written for k6 read it alike.
// A failed outcome check (oversold, lost, doubled) exits 1 and wins.
const exitThresholds = 99

const loadtestUsage = `Usage: sluice loadtest [flags]

Rehearses a drop against a running gate: sends orders on a schedule
(--profile: constant, ramp, spike or steps), measures every answer from its
intended send time, prints a report (text, --json, --html FILE), then
checks the outcome: nothing oversold, lost or doubled. With --waiting-room
it rehearses a waiting-room sale instead: --buyers join the line during
--before (the join window, up to the sale's start), poll their tickets and
order with their passes; --late-buyers join after the start. Exit 1 when
the outcome check fails, 99 when a --threshold is missed.

Examples:
  sluice loadtest --sale rehearsal --profile spike --rate 5000 --html /tmp/report.html
  sluice loadtest --sale n1 --profile constant --rate 500 --duration 4s --prefer-wait 10s
  sluice loadtest --sale s1 --threshold 'p99<50ms' --json > /tmp/before.json
  sluice sale create drop --stock 300 --waiting-room --starts-at +30s
  sluice loadtest --waiting-room --sale drop --buyers 2000 --late-buyers 200 --html /tmp/room.html

Every flag is also SLUICE_<FLAG> in the environment. Guide:
docs/rehearse-a-drop.md.

Flags:
`

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadtestUsage)
		fs.PrintDefaults()
	}
	var (
		o                               loadtest.Options
		profile, steps                  string
		rate, from, to, trickle         float64
		duration, before, hold, decay   time.Duration
		waitingRoom                     bool
		lateBuyers, sybil, sybilWorkers int
		abandon                         float64
		stepEvery, metricsLinger        time.Duration
		jsonOut, noVerify, noProgress   bool
		htmlFile, metricsListen         string
		compareFile                     string
		thresholds                      []loadtest.Threshold
	)
	fs.StringVar(&o.Target, "target", "http://127.0.0.1:8080", "the gate's public API")
	fs.StringVar(&o.Sale, "sale", "demo", "the sale to buy from")
	fs.StringVar(&profile, "profile", "spike", "constant, ramp, spike or steps")
	fs.Float64Var(&rate, "rate", 2000, "requests/s: the constant rate, or the spike's peak")
	fs.DurationVar(&duration, "duration", 5*time.Second, "length of a constant or ramp profile")
	fs.Float64Var(&from, "from", 100, "ramp: starting rate")
	fs.Float64Var(&to, "to", 5000, "ramp: final rate")
	fs.Float64Var(&trickle, "trickle", 50, "spike: rate before T0 and after the decay")
	fs.DurationVar(&before, "before", time.Second, "spike: how long the trickle runs before T0; --waiting-room: the join window before the sale's start (0: from now until the start)")
	fs.DurationVar(&hold, "hold", 2*time.Second, "spike: how long the peak holds")
	fs.DurationVar(&decay, "decay", 2*time.Second, "spike: decay from the peak to the trickle")
	fs.StringVar(&steps, "steps", "500,1000,2000,4000", "steps: comma-separated rates")
	fs.DurationVar(&stepEvery, "step-duration", 2*time.Second, "steps: how long each rate holds")
	fs.Uint64Var(&o.MaxRequests, "max-requests", 0, "bound on requests (0: what the profile schedules)")
	fs.DurationVar(&o.MaxDuration, "max-duration", 0, "bound on the run (0: the profile's length plus --timeout)")
	fs.IntVar(&o.Connections, "connections", 256, "most requests in flight (and connections)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "longest request")
	fs.BoolVar(&o.NoKeepAlive, "no-keepalive", false, "a new connection per request")
	fs.DurationVar(&o.PreferWait, "prefer-wait", 0, "send Prefer: wait=N: each answer waits for the order's decision (201, or its refusal), at most this long (whole seconds, up to 30s)")
	fs.DurationVar(&o.LateAfter, "late-after", 5*time.Millisecond, "a send this late after its intended time counts as late")
	fs.IntVar(&o.Mix.Buyers, "buyers", 100_000, "distinct buyer ids")
	fs.Float64Var(&o.Mix.Impatient, "impatient", 0.05, "share of requests retrying with the same Idempotency-Key")
	fs.Float64Var(&o.Mix.Greedy, "greedy", 0.02, "share of requests by greedy buyers (new key each time)")
	fs.Float64Var(&o.Mix.Bad, "bad", 0.02, "share of bad requests (malformed, oversized, unknown sale)")
	fs.Float64Var(&o.Mix.Keyed, "keyed", 0.2, "share of buyers whose client sends an Idempotency-Key (impatient retries come from these)")
	fs.Uint64Var(&o.Mix.Seed, "seed", 0, "seed of the buyer mix (0: random)")
	fs.BoolVar(&noVerify, "no-verify", false, "skip the outcome check")
	fs.DurationVar(&o.VerifyTimeout, "verify-timeout", 60*time.Second, "longest wait for the drain before the check")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.Func("threshold", "fail the run (exit 99) unless this holds, e.g. 'p99<50ms', 'dropped==0', 'failed_ratio<1%'; repeatable (see README)",
		func(v string) error {
			t, err := loadtest.ParseThreshold(v)
			if err == nil {
				thresholds = append(thresholds, t)
			}
			return err
		})
	fs.StringVar(&compareFile, "compare", "", "show each figure's change from a previous run's --json report")
	fs.StringVar(&htmlFile, "html", "", "write a self-contained HTML report with charts to this file")
	fs.StringVar(&metricsListen, "metrics-listen", "", "serve the generator's Prometheus metrics on this address")
	fs.DurationVar(&metricsLinger, "metrics-linger", 0, "keep serving metrics this long after the run")
	fs.BoolVar(&noProgress, "quiet", false, "no progress line")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target outside loopback and private networks")
	fs.BoolVar(&waitingRoom, "waiting-room", false, "rehearse a waiting-room sale: --buyers join during --before (up to the sale's start), poll their tickets and order with their pass (see README)")
	fs.IntVar(&lateBuyers, "late-buyers", 0, "--waiting-room: buyers who join just after the start")
	fs.IntVar(&sybil, "sybil", 0, "--waiting-room: an attacker, one client joining this many ids from the window's start until the start, solving the line's proofs of work when it asks; the report gives its share of the line and the stock and the CPU it paid")
	fs.Float64Var(&abandon, "abandon", 0, "--waiting-room: the share of joiners (0 to 1) who never come back after the start (their turns lapse); the report gives the lapsed turns, the time to sold out and how long those who stayed waited")
	fs.IntVar(&sybilWorkers, "sybil-workers", 1, "--sybil: joins (and proofs) the attacker works on at once (1: one core)")
	check := fs.Bool("check", false, checkHelp)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest: unexpected arguments %q", fs.Args())
	}
	// SLUICE_<FLAG> fills a flag not given, as for the other commands.
	if _, err := layerWith(fs, "", map[string]any{}, nil, layerOptions{only: map[string]bool{"check": true}}); err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	if *check {
		// What the run would refuse before sending anything.
		if err := loadtest.CheckTarget(o.Target, o.AllowRemote); err != nil {
			return &exitError{code: 2, err: err}
		}
		if compareFile != "" {
			if _, err := loadtest.ReadReport(compareFile); err != nil {
				return &exitError{code: 2, err: err}
			}
		}
		if metricsListen != "" {
			if _, _, err := net.SplitHostPort(metricsListen); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("loadtest: --metrics-listen: %w", err)}
			}
		}
	}
	if waitingRoom {
		beforeSet := false
		fs.Visit(func(f *flag.Flag) { beforeSet = beforeSet || f.Name == "before" })
		ro := loadtest.RoomOptions{Target: o.Target, Sale: o.Sale, Buyers: o.Mix.Buyers, Late: lateBuyers,
			Connections: o.Connections, MaxDuration: o.MaxDuration, VerifyTimeout: o.VerifyTimeout,
			AllowRemote: o.AllowRemote, Seed: o.Mix.Seed, Sybil: sybil, SybilWorkers: sybilWorkers, Abandon: abandon}
		if beforeSet {
			ro.Before = before
		}
		if !noProgress {
			ro.Progress = stderr
		}
		if *check {
			switch {
			case ro.Buyers <= 0:
				return &exitError{code: 2, err: errors.New("loadtest: --waiting-room needs --buyers > 0")}
			case ro.Abandon < 0 || ro.Abandon >= 1:
				return &exitError{code: 2, err: errors.New("loadtest: --abandon is a share from 0 to below 1")}
			}
			return checked(stdout, "loadtest --waiting-room of "+o.Sale+" at "+o.Target)
		}
		return runRoomLoadtest(ctx, ro, jsonOut, htmlFile, stdout, stderr)
	}
	switch profile {
	case "constant":
		o.Profile = loadtest.Constant(rate, duration)
	case "ramp":
		o.Profile = loadtest.Ramp(from, to, duration)
	case "spike":
		o.Profile = loadtest.Spike(trickle, before, rate, hold, decay)
	case "steps":
		var rates []float64
		for _, s := range strings.Split(steps, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return fmt.Errorf("loadtest: --steps %q: %w", steps, err)
			}
			rates = append(rates, r)
		}
		o.Profile = loadtest.Steps(rates, stepEvery)
	default:
		return fmt.Errorf("loadtest: --profile %q: want constant, ramp, spike or steps", profile)
	}
	if *check {
		if err := o.Profile.Validate(); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("loadtest: %w", err)}
		}
		return checked(stdout, "loadtest of "+o.Sale+" at "+o.Target)
	}
	o.Verify = !noVerify
	if !noProgress {
		o.Progress = stderr
		if f, ok := stderr.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				o.TTY = true
			}
		}
	}
	if metricsListen != "" {
		ln, err := net.Listen("tcp", metricsListen)
		if err != nil {
			return fmt.Errorf("loadtest: --metrics-listen: %w", err)
		}
		m, srv := loadtest.ServeMetrics(ln)
		o.Metrics = m
		fmt.Fprintf(stderr, "metrics on http://%s/metrics\n", ln.Addr())
		defer func() {
			if metricsLinger > 0 {
				select {
				case <-time.After(metricsLinger):
				case <-ctx.Done():
				}
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	var prev *loadtest.Report
	if compareFile != "" { // read first: a bad file fails before the run, not after
		p, err := loadtest.ReadReport(compareFile)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		prev = &p
	}
	rep, err := loadtest.Rehearse(ctx, o)
	if err != nil {
		return err
	}
	rep.Thresholds = rep.Check(thresholds)
	if prev != nil {
		rep.Compare(*prev, compareFile)
	}
	if err := writeReport(rep, jsonOut, htmlFile, stdout, stderr); err != nil {
		return err
	}
	if rep.Interrupted {
		return &exitError{code: 130, err: errors.New("loadtest: interrupted; the report covers what was sent")}
	}
	if v := rep.Verification; v != nil && !v.Passed {
		return &exitError{code: 1, err: errors.New("loadtest: the outcome check failed")}
	}
	if !rep.ThresholdsPassed() {
		return &exitError{code: exitThresholds, err: errors.New("loadtest: some thresholds failed")}
	}
	return nil
}

// runRoomLoadtest is sluice loadtest --waiting-room.
func runRoomLoadtest(ctx context.Context, o loadtest.RoomOptions, jsonOut bool, htmlFile string, stdout, stderr io.Writer) error {
	rep, err := loadtest.RehearseRoom(ctx, o)
	if err != nil {
		return err
	}
	if err := writeReport(rep, jsonOut, htmlFile, stdout, stderr); err != nil {
		return err
	}
	if !rep.Passed {
		return &exitError{code: 1, err: errors.New("loadtest: the waiting room's outcome check failed")}
	}
	return nil
}

// report is what both kinds of rehearsal write.
type report interface {
	WriteJSON(io.Writer) error
	WriteText(io.Writer)
	WriteHTML(io.Writer) error
}

// writeReport writes a report as text or JSON to stdout, and as HTML to
// htmlFile when one is named.
func writeReport(rep report, jsonOut bool, htmlFile string, stdout, stderr io.Writer) error {
	if jsonOut {
		if err := rep.WriteJSON(stdout); err != nil {
			return err
		}
	} else {
		rep.WriteText(stdout)
	}
	if htmlFile == "" {
		return nil
	}
	f, err := os.Create(htmlFile)
	if err != nil {
		return fmt.Errorf("loadtest: --html: %w", err)
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "HTML report: %s\n", htmlFile)
	return nil
}
