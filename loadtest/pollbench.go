package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// PollBenchOptions measures the waiting-room rehearsal's poll path at
// full speed: the listed tickets (a line someone joined) are polled
// through the rehearsal's own wheel, workers, connections and answer
// reader, each again as soon as it is answered (a closed loop, as wrk's),
// so that the generator's rate and CPU per poll compare with wrk's
// against the same gate.
type PollBenchOptions struct {
	Target      string
	Tickets     []string
	Duration    time.Duration // default 5 s
	Connections int           // default 128
	Timeout     time.Duration // default 15 s
	AllowRemote bool
}

// PollBenchReport is what a poll bench measured.
type PollBenchReport struct {
	Target      string  `json:"target"`
	Tickets     int     `json:"tickets"`
	Connections int     `json:"connections"`
	Duration    float64 `json:"duration_seconds"`
	Polls       int     `json:"polls"`
	// PollsPerSecond over the duration; PollsPerCPUSecond over the CPU
	// (user and system) this process spent meanwhile.
	PollsPerSecond    float64      `json:"polls_per_second"`
	CPUSeconds        float64      `json:"cpu_seconds"`
	PollsPerCPUSecond float64      `json:"polls_per_cpu_second"`
	Latency           Quantiles    `json:"latency"`
	Errors            []ErrorCount `json:"errors"`
	MaxRSS            int64        `json:"max_rss_bytes"`
}

// ReadTickets reads ticket ids, one a line (blank lines skipped).
func ReadTickets(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			out = append(out, t)
		}
	}
	return out, sc.Err()
}

// PollBench polls the tickets for the duration and reports the rate.
func PollBench(ctx context.Context, o PollBenchOptions) (PollBenchReport, error) {
	if err := CheckTarget(o.Target, o.AllowRemote); err != nil {
		return PollBenchReport{}, err
	}
	if len(o.Tickets) == 0 {
		return PollBenchReport{}, errors.New("loadtest: polls: no tickets (--tickets FILE, one id a line)")
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Connections <= 0 {
		o.Connections = 128
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	base := strings.TrimRight(o.Target, "/")
	client, err := newCrowdClient(o.Target, o.Connections, o.Timeout)
	if err != nil {
		return PollBenchReport{}, err
	}
	host, path, err := hostAndPath(o.Target)
	if err != nil {
		return PollBenchReport{}, err
	}
	now := time.Now()
	c := newCrowd("bench", Shard{}, len(o.Tickets), 0, 0, now, now)
	for i, t := range o.Tickets {
		c.setTicket(uint32(i), []byte(t))
		c.buyers[i].step, c.buyers[i].due = stepPoll, 0
	}
	r := &crowdRun{c: c, client: client, base: base, ticketsPath: path + "/v1/tickets/", host: host, tls: strings.HasPrefix(o.Target, "https:"), closedLoop: true,
		lateAfter: time.Second, timeout: o.Timeout, workers: o.Connections, st: newCrowdStats()}
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	cpu0, t0 := processCPU(), time.Now()
	r.run(runCtx)
	took, cpu := time.Since(t0), processCPU()-cpu0
	rep := PollBenchReport{Target: o.Target, Tickets: len(o.Tickets), Connections: o.Connections, Duration: took.Seconds(),
		Polls: int(r.st.polls.Load()), CPUSeconds: cpu.Seconds(), MaxRSS: peakRSS()}
	rep.PollsPerSecond = float64(rep.Polls) / rep.Duration
	if rep.CPUSeconds > 0 {
		rep.PollsPerCPUSecond = float64(rep.Polls) / rep.CPUSeconds
	}
	r.st.mu.Lock()
	rep.Latency, rep.Errors = quantilesOf(r.st.lat[latPoll]), r.st.errs.list()
	r.st.mu.Unlock()
	return rep, nil
}

// WriteText writes the figures for a terminal.
func (r PollBenchReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "polls of %d tickets at %s, %d connections, %.1fs: %d polls, %.0f/s\n", r.Tickets, r.Target, r.Connections, r.Duration, r.Polls, r.PollsPerSecond)
	fmt.Fprintf(w, "  CPU %.2f s (user and system): %.0f polls per CPU-second; max RSS %s\n", r.CPUSeconds, r.PollsPerCPUSecond, mib(r.MaxRSS))
	fmt.Fprintf(w, "  latency: p50 %s  p95 %s  p99 %s  max %s\n", latText(r.Latency.P50), latText(r.Latency.P95), latText(r.Latency.P99), latText(r.Latency.Max))
	writeErrors(w, r.Errors)
}

// WriteJSON writes the figures as JSON.
func (r PollBenchReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// latText is a latency in seconds for people.
func latText(s float64) string { return rd(time.Duration(s * float64(time.Second))).String() }
