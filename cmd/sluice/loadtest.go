package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
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

A crowd too big for one machine runs in shares: each process runs
--waiting-room --shard i/n --json (the same flags otherwise) and writes
its share's report; "sluice loadtest merge" runs the whole outcome check
on them. "sluice loadtest polls" measures the generator's top poll rate
(see their -h).

Examples:
  sluice loadtest --sale rehearsal --profile spike --rate 5000 --html /tmp/report.html
  sluice loadtest --sale n1 --profile constant --rate 500 --duration 4s --prefer-wait 10s
  sluice loadtest --sale s1 --threshold 'p99<50ms' --json > /tmp/before.json
  sluice loadtest --sale sneaker --variants us9=3,us10=5,us11=2 --profile constant --rate 500
  sluice sale create drop --stock 300 --waiting-room --starts-at +30s
  sluice loadtest --waiting-room --sale drop --buyers 2000 --late-buyers 200 --html /tmp/room.html
  sluice loadtest --waiting-room --sale drop --buyers 300000 --shard 2/3 --json > /tmp/shard2.json
  sluice loadtest merge /tmp/shard1.json /tmp/shard2.json /tmp/shard3.json

Every flag is also SLUICE_<FLAG> in the environment. Guide:
docs/rehearse-a-drop.md.

Flags:
`

// loadtestFlags are sluice loadtest's flags.
type loadtestFlags struct {
	o                               loadtest.Options
	profile, steps                  string
	rate, from, to, trickle         float64
	duration, before, hold, decay   time.Duration
	waitingRoom                     bool
	lateBuyers, sybil, sybilWorkers int
	abandon                         float64
	shard, cpuProfile, heapProfile  string
	stepEvery, metricsLinger        time.Duration
	jsonOut, noVerify, noProgress   bool
	htmlFile, metricsListen         string
	compareFile                     string
	thresholds                      []loadtest.Threshold
	check                           bool
}

func (f *loadtestFlags) define(fs *flag.FlagSet) {
	o := &f.o
	fs.StringVar(&o.Target, "target", "http://127.0.0.1:8080", "the gate's public API")
	fs.StringVar(&o.Sale, "sale", "demo", "the sale to buy from")
	fs.StringVar(&f.profile, "profile", "spike", "constant, ramp, spike or steps")
	fs.Float64Var(&f.rate, "rate", 2000, "requests/s: the constant rate, or the spike's peak")
	fs.DurationVar(&f.duration, "duration", 5*time.Second, "length of a constant or ramp profile")
	fs.Float64Var(&f.from, "from", 100, "ramp: starting rate")
	fs.Float64Var(&f.to, "to", 5000, "ramp: final rate")
	fs.Float64Var(&f.trickle, "trickle", 50, "spike: rate before T0 and after the decay")
	fs.DurationVar(&f.before, "before", time.Second, "spike: how long the trickle runs before T0; --waiting-room: the join window before the sale's start (0: from now until the start)")
	fs.DurationVar(&f.hold, "hold", 2*time.Second, "spike: how long the peak holds")
	fs.DurationVar(&f.decay, "decay", 2*time.Second, "spike: decay from the peak to the trickle")
	fs.StringVar(&f.steps, "steps", "500,1000,2000,4000", "steps: comma-separated rates")
	fs.DurationVar(&f.stepEvery, "step-duration", 2*time.Second, "steps: how long each rate holds")
	fs.Uint64Var(&o.MaxRequests, "max-requests", 0, "bound on requests (0: what the profile schedules)")
	fs.DurationVar(&o.MaxDuration, "max-duration", 0, "bound on the run (0: the profile's length plus --timeout; --waiting-room: until the start plus 2m)")
	fs.IntVar(&o.Connections, "connections", 256, "most requests in flight (and connections)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "longest request (--waiting-room: 15s unless given)")
	fs.BoolVar(&o.NoKeepAlive, "no-keepalive", false, "a new connection per request")
	fs.DurationVar(&o.PreferWait, "prefer-wait", 0, "send Prefer: wait=N: each answer waits for the order's decision (201, or its refusal), at most this long (whole seconds, up to 30s)")
	fs.DurationVar(&o.LateAfter, "late-after", 5*time.Millisecond, "a send this late after its intended time counts as late (--waiting-room: a poll this late after the time the gate gave; 1s unless given)")
	fs.IntVar(&o.Mix.Buyers, "buyers", 100_000, "distinct buyer ids")
	fs.Float64Var(&o.Mix.Impatient, "impatient", 0.05, "share of requests retrying with the same Idempotency-Key")
	fs.Float64Var(&o.Mix.Greedy, "greedy", 0.02, "share of requests by greedy buyers (new key each time)")
	fs.Float64Var(&o.Mix.Bad, "bad", 0.02, "share of bad requests (malformed, oversized, unknown sale)")
	fs.Float64Var(&o.Mix.Keyed, "keyed", 0.2, "share of buyers whose client sends an Idempotency-Key (impatient retries come from these)")
	fs.Func("variants", "a sale with variants: the `LIST` of its variants buyers choose, each with its weight (us9=3,us10=5; us9,us10 for the same weight): every order names one, a buyer told variant_sold_out orders another of those left, and the check counts each variant's stock", func(v string) error {
		vs, err := loadtest.ParseVariants(v)
		o.Mix.Variants = vs
		return err
	})
	fs.Uint64Var(&o.Mix.Seed, "seed", 0, "seed of the buyer mix (0: random; --waiting-room: one made of the sale and its start, the same in every shard)")
	fs.BoolVar(&f.noVerify, "no-verify", false, "skip the outcome check")
	fs.DurationVar(&o.VerifyTimeout, "verify-timeout", 60*time.Second, "longest wait for the drain before the check")
	fs.BoolVar(&f.jsonOut, "json", false, "print the report as JSON")
	fs.Func("threshold", "fail the run (exit 99) unless this holds, e.g. 'p99<50ms', 'p95<20ms', 'dropped==0', 'failed_ratio<1%'; repeatable (see README)",
		func(v string) error {
			t, err := loadtest.ParseThreshold(v)
			if err == nil {
				f.thresholds = append(f.thresholds, t)
			}
			return err
		})
	fs.StringVar(&f.compareFile, "compare", "", "show each figure's change from a previous run's --json report")
	fs.StringVar(&f.htmlFile, "html", "", "write a self-contained HTML report with charts to this file")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve the generator's Prometheus metrics on this address")
	fs.DurationVar(&f.metricsLinger, "metrics-linger", 0, "keep serving metrics this long after the run")
	fs.BoolVar(&f.noProgress, "quiet", false, "no progress line")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target outside loopback and private networks")
	fs.BoolVar(&f.waitingRoom, "waiting-room", false, "rehearse a waiting-room sale: --buyers join during --before (up to the sale's start), poll their tickets and order with their pass (see README)")
	fs.IntVar(&f.lateBuyers, "late-buyers", 0, "--waiting-room: buyers who join just after the start")
	fs.IntVar(&f.sybil, "sybil", 0, "--waiting-room: an attacker, one client joining this many ids from the window's start until the start, solving the line's proofs of work when it asks; the report gives its share of the line and the stock and the CPU it paid")
	fs.Float64Var(&f.abandon, "abandon", 0, "--waiting-room: the share of joiners (0 to 1) who never come back after the start (their turns lapse); the report gives the lapsed turns, the time to sold out and how long those who stayed waited")
	fs.IntVar(&f.sybilWorkers, "sybil-workers", 1, "--sybil: joins (and proofs) the attacker works on at once (1: one core)")
	fs.StringVar(&f.cpuProfile, "cpu-profile", "", "--waiting-room: write the generator's CPU profile (pprof) of the whole run to this `file`")
	fs.StringVar(&f.heapProfile, "heap-profile", "", "--waiting-room: write the generator's heap profile (pprof) at the sale's start, once the early buyers joined, to this `file`")
	fs.BoolVar(&f.check, "check", false, checkHelp)
	fs.StringVar(&f.shard, "shard", "", "--waiting-room: simulate only the i-th of n shares of the buyers, given as i/n (with --json: its report is merged with the others' by sluice loadtest merge, which runs the outcome check)")
}

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "merge":
			return runLoadtestMerge(ctx, args[1:], stdout, stderr)
		case "polls":
			return runLoadtestPolls(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("sluice loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), loadtestUsage)
		fs.PrintDefaults()
	}
	var f loadtestFlags
	f.define(fs)
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
	if f.check {
		if err := f.checkRun(); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	if f.waitingRoom {
		return f.runRoom(ctx, fs, stdout, stderr)
	}
	if f.shard != "" {
		return errors.New("loadtest: --shard is for --waiting-room rehearsals")
	}
	o := f.o
	var err error
	if o.Profile, err = f.makeProfile(); err != nil {
		return err
	}
	if f.check {
		if err := o.Profile.Validate(); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("loadtest: %w", err)}
		}
		return checked(stdout, "loadtest of "+o.Sale+" at "+o.Target)
	}
	o.Verify = !f.noVerify
	if !f.noProgress {
		o.Progress = stderr
		if file, ok := stderr.(*os.File); ok {
			if st, err := file.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				o.TTY = true
			}
		}
	}
	if f.metricsListen != "" {
		ln, err := net.Listen("tcp", f.metricsListen)
		if err != nil {
			return fmt.Errorf("loadtest: --metrics-listen: %w", err)
		}
		m, srv := loadtest.ServeMetrics(ln)
		o.Metrics = m
		fmt.Fprintf(stderr, "metrics on http://%s/metrics\n", ln.Addr())
		defer func() {
			if f.metricsLinger > 0 {
				select {
				case <-time.After(f.metricsLinger):
				case <-ctx.Done():
				}
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	var prev *loadtest.Report
	if f.compareFile != "" { // read first: a bad file fails before the run, not after
		p, err := loadtest.ReadReport(f.compareFile)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		prev = &p
	}
	rep, err := loadtest.Rehearse(ctx, o)
	if err != nil {
		return err
	}
	rep.Thresholds = rep.Check(f.thresholds)
	if prev != nil {
		rep.Compare(*prev, f.compareFile)
	}
	if err := writeReport(rep, f.jsonOut, f.htmlFile, stdout, stderr); err != nil {
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

// checkRun refuses, for --check, what the run would refuse before
// sending anything: a target it may not load, a report to compare with
// that cannot be read, a metrics address that is not one.
func (f *loadtestFlags) checkRun() error {
	if err := loadtest.CheckTarget(f.o.Target, f.o.AllowRemote); err != nil {
		return err
	}
	if f.compareFile != "" {
		if _, err := loadtest.ReadReport(f.compareFile); err != nil {
			return err
		}
	}
	if f.metricsListen != "" {
		if _, _, err := net.SplitHostPort(f.metricsListen); err != nil {
			return fmt.Errorf("loadtest: --metrics-listen: %w", err)
		}
	}
	return nil
}

// makeProfile is the schedule the flags ask for.
func (f *loadtestFlags) makeProfile() (loadtest.Profile, error) {
	switch f.profile {
	case "constant":
		return loadtest.Constant(f.rate, f.duration), nil
	case "ramp":
		return loadtest.Ramp(f.from, f.to, f.duration), nil
	case "spike":
		return loadtest.Spike(f.trickle, f.before, f.rate, f.hold, f.decay), nil
	case "steps":
		var rates []float64
		for _, s := range strings.Split(f.steps, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return loadtest.Profile{}, fmt.Errorf("loadtest: --steps %q: %w", f.steps, err)
			}
			rates = append(rates, r)
		}
		return loadtest.Steps(rates, f.stepEvery), nil
	}
	return loadtest.Profile{}, fmt.Errorf("loadtest: --profile %q: want constant, ramp, spike or steps", f.profile)
}

// runRoom is sluice loadtest --waiting-room: the flags given that mean
// something else for a spike (--before, --timeout, --late-after) count
// only when given.
func (f *loadtestFlags) runRoom(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
	o := f.o
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	ro := loadtest.RoomOptions{Target: o.Target, Sale: o.Sale, Buyers: o.Mix.Buyers, Late: f.lateBuyers,
		Connections: o.Connections, MaxDuration: o.MaxDuration, VerifyTimeout: o.VerifyTimeout,
		AllowRemote: o.AllowRemote, Seed: o.Mix.Seed, Sybil: f.sybil, SybilWorkers: f.sybilWorkers, Abandon: f.abandon,
		Variants: o.Mix.Variants}
	if set["before"] {
		ro.Before = f.before
	}
	if set["timeout"] {
		ro.Timeout = o.Timeout
	}
	if set["late-after"] {
		ro.LateAfter = o.LateAfter
	}
	if f.shard != "" {
		sh, err := loadtest.ParseShard(f.shard)
		if err != nil {
			return err
		}
		if !f.jsonOut {
			return errors.New("loadtest: --shard writes its share's report for sluice loadtest merge: add --json (and send it to a file)")
		}
		ro.Shard = sh
	}
	if !f.noProgress {
		ro.Progress = stderr
	}
	if f.check {
		switch {
		case ro.Buyers <= 0:
			return &exitError{code: 2, err: errors.New("loadtest: --waiting-room needs --buyers > 0")}
		case ro.Abandon < 0 || ro.Abandon >= 1:
			return &exitError{code: 2, err: errors.New("loadtest: --abandon is a share from 0 to below 1")}
		}
		return checked(stdout, "loadtest --waiting-room of "+o.Sale+" at "+o.Target)
	}
	if f.heapProfile != "" {
		file, err := os.Create(f.heapProfile)
		if err != nil {
			return fmt.Errorf("loadtest: --heap-profile: %w", err)
		}
		defer file.Close()
		ro.HeapProfile = file
	}
	if f.cpuProfile != "" {
		file, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("loadtest: --cpu-profile: %w", err)
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return fmt.Errorf("loadtest: --cpu-profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return runRoomLoadtest(ctx, ro, f.jsonOut, f.htmlFile, stdout, stderr)
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
	if !rep.Passed && o.Shard.Of <= 1 {
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

const mergeUsage = `Usage: sluice loadtest merge [flags] REPORT.json...

Runs the outcome check of a waiting-room rehearsal whose buyers ran in
shares (sluice loadtest --waiting-room --shard i/n --json, each on its own
machine or core, the same flags otherwise): it takes every shard's report,
puts their buyers together as one run would have had them, sums their
figures up and checks the whole sale (the draw, the positions, the passes,
the orders) against the gate. Every shard's report is needed, once each.
Exit 1 when the check fails.

Examples:
  sluice loadtest merge /tmp/shard1.json /tmp/shard2.json /tmp/shard3.json
  sluice loadtest merge --target http://10.0.0.7:8080 --html /tmp/room.html /tmp/shard*.json

Flags:
`

// runLoadtestMerge is sluice loadtest merge.
func runLoadtestMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice loadtest merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mergeUsage)
		fs.PrintDefaults()
	}
	var (
		o        loadtest.MergeOptions
		jsonOut  bool
		htmlFile string
	)
	fs.StringVar(&o.Target, "target", "", "the gate the check reads (default: the first report's target)")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target outside loopback and private networks")
	fs.DurationVar(&o.VerifyTimeout, "verify-timeout", 60*time.Second, "longest wait for the drain before the check")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.StringVar(&htmlFile, "html", "", "write a self-contained HTML report to this file")
	check := fs.Bool("check", false, checkHelp)
	// The reports, with flags before, between or after them.
	var files []string
	for rest := args; ; {
		if err := parseFlags(fs, rest, stdout, stderr); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files, rest = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if _, err := layerWith(fs, "", map[string]any{}, nil, layerOptions{only: map[string]bool{"check": true}}); err != nil {
		return fmt.Errorf("loadtest merge: %w", err)
	}
	if len(files) == 0 {
		return usageError(fs.Name(), errors.New("loadtest merge: name every shard's --json report"))
	}
	var reps []loadtest.RoomReport
	for _, path := range files {
		r, err := loadtest.ReadRoomReport(path)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		reps = append(reps, r)
	}
	if *check {
		if o.Target != "" {
			if err := loadtest.CheckTarget(o.Target, o.AllowRemote); err != nil {
				return &exitError{code: 2, err: err}
			}
		}
		return checked(stdout, fmt.Sprintf("loadtest merge of %d reports", len(reps)))
	}
	rep, err := loadtest.MergeRoomReports(ctx, o, reps)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if err := writeReport(rep, jsonOut, htmlFile, stdout, stderr); err != nil {
		return err
	}
	if !rep.Passed {
		return &exitError{code: 1, err: errors.New("loadtest merge: the waiting room's outcome check failed")}
	}
	return nil
}

const pollsUsage = `Usage: sluice loadtest polls --tickets FILE [flags]

Measures the waiting-room rehearsal's poll path at full speed, to compare
with wrk against the same gate: the tickets listed in FILE (one id a line,
as bench/join.lua writes them) are polled through the rehearsal's own
timer wheel, workers, keep-alive connections and answer reader, each
again as soon as it is answered, for --duration. Prints the polls per
second and per CPU-second of this process (user and system), the
latencies and the errors.

Examples:
  sluice loadtest polls --tickets /tmp/tickets --duration 6s --connections 128
  sluice loadtest polls --target http://127.0.0.1:18080 --tickets /tmp/tickets --json

Flags:
`

// runLoadtestPolls is sluice loadtest polls.
func runLoadtestPolls(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice loadtest polls", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), pollsUsage)
		fs.PrintDefaults()
	}
	var (
		o       loadtest.PollBenchOptions
		tickets string
		jsonOut bool
	)
	fs.StringVar(&o.Target, "target", "http://127.0.0.1:8080", "the gate's public API")
	fs.StringVar(&tickets, "tickets", "", "the ticket ids to poll, one a line, in this `FILE`")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "how long to poll")
	fs.IntVar(&o.Connections, "connections", 128, "polls in flight (and connections)")
	fs.DurationVar(&o.Timeout, "timeout", 15*time.Second, "longest request")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target outside loopback and private networks")
	fs.BoolVar(&jsonOut, "json", false, "print the figures as JSON")
	check := fs.Bool("check", false, checkHelp)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if _, err := layerWith(fs, "", map[string]any{}, nil, layerOptions{only: map[string]bool{"check": true}}); err != nil {
		return fmt.Errorf("loadtest polls: %w", err)
	}
	if tickets == "" || fs.NArg() > 0 {
		return usageError(fs.Name(), errors.New("loadtest polls: --tickets FILE, and no arguments"))
	}
	f, err := os.Open(tickets)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("loadtest polls: %w", err)}
	}
	o.Tickets, err = loadtest.ReadTickets(f)
	f.Close()
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("loadtest polls: %s: %w", tickets, err)}
	}
	if *check {
		if err := loadtest.CheckTarget(o.Target, o.AllowRemote); err != nil {
			return &exitError{code: 2, err: err}
		}
		return checked(stdout, fmt.Sprintf("loadtest polls of %d tickets at %s", len(o.Tickets), o.Target))
	}
	rep, err := loadtest.PollBench(ctx, o)
	if err != nil {
		return err
	}
	if jsonOut {
		return rep.WriteJSON(stdout)
	}
	rep.WriteText(stdout)
	return nil
}
