package serve

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"sluice/admission"
	"sluice/internal/ledger"
)

// The console is / on the ops listener: one self-contained page that
// polls GET /status (the same figures as JSON, for `sluice status` and
// scripts). A sampler reads the slow figures once a second, whatever the
// number of consoles open: JetStream's own report, the runtime's memory
// statistics and each sale's answer counters, kept for a minute so a page
// opened mid-burst draws the last minute at once.

//go:embed console.html
var consoleHTML []byte

// consoleWindow is how many one-second samples the answer charts cover.
const consoleWindow = 60

// keepUpWindow is how far back a drain's trend is judged: the queue's
// depth, the orders admitted and drained now against the newest sample at
// least this many seconds old. judgeSpan is the least span of samples a
// judgement needs.
const (
	keepUpWindow = 5 * time.Second
	judgeSpan    = 2 * time.Second
)

// Drain states (SaleStatus.DrainState).
const (
	DrainNone          = "none"           // no drain consumer for the sale
	DrainIdle          = "idle"           // the queue empty, nothing drained lately
	DrainKeepingUp     = "keeping_up"     // the queue empty, or not growing: orders drained as fast as admitted
	DrainFallingBehind = "falling_behind" // the queue grows (admitted faster than drained), or nothing drains
	DrainQueueFull     = "queue_full"     // the queue at its bound: the drain sets the pace, buyers are told busy
	DrainJudging       = "judging"        // a queue, and too few seconds of samples yet to tell its trend
)

// Status is the JSON of GET /status on the ops listener.
type Status struct {
	Time      time.Time      `json:"time"`
	Process   ProcessStatus  `json:"process"`
	JetStream JetStreamState `json:"jetstream"`
	// Admin: the admin API is on (the gate was given --admin-token).
	Admin bool `json:"admin"`
	// Ready is what /readyz says; LedgerRefusing: JetStream refuses writes
	// (a full store) and orders are answered 503 at once.
	Ready          bool `json:"ready"`
	LedgerRefusing bool `json:"ledger_refusing"`
	// ServerErrors are the public API's 5xx answers since the start
	// (admission.Gate.ServerErrors), ServerErrorsLastMinute those of the
	// last minute: the gate's own failures. Refusals (sold out, busy,
	// already ordered, bad input) are not errors.
	ServerErrors           uint64 `json:"server_errors"`
	ServerErrorsLastMinute uint64 `json:"server_errors_last_minute"`
	// Waiters are the requests held for their order's decision (Prefer:
	// wait) now, MaxWaiters the most the gate holds at once.
	Waiters    int64         `json:"waiters"`
	MaxWaiters int           `json:"max_waiters"`
	Sales      []SaleStatus  `json:"sales"`
	Drain      *DrainProcess `json:"drain,omitempty"`
}

// ProcessStatus is the gate process's own figures.
type ProcessStatus struct {
	Command       string    `json:"command"` // serve or drain
	Role          string    `json:"role"`    // gate, drain or gate+drain
	Version       string    `json:"version"`
	GoVersion     string    `json:"go_version"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	API           string    `json:"api,omitempty"`
	Goroutines    int       `json:"goroutines"`
	HeapBytes     uint64    `json:"heap_bytes"`
	SysBytes      uint64    `json:"sys_bytes"` // from the OS, all of the runtime's
	RSSBytes      uint64    `json:"rss_bytes,omitempty"`
	GCCycles      uint32    `json:"gc_cycles"`
	// GCPauseSeconds is the last collection's pause; GCPauseTotalSeconds
	// all of them; GCCPUFraction the share of CPU the collector has used.
	GCPauseSeconds      float64 `json:"gc_pause_seconds"`
	GCPauseTotalSeconds float64 `json:"gc_pause_total_seconds"`
	GCCPUFraction       float64 `json:"gc_cpu_fraction"`
	MemoryLimitBytes    int64   `json:"memory_limit_bytes,omitempty"`
}

// JetStreamState is JetStream as this process sees it.
type JetStreamState struct {
	Connected bool   `json:"connected"`
	URL       string `json:"url,omitempty"`
	Embedded  bool   `json:"embedded"`
	Server    string `json:"server,omitempty"`
	Streams   int    `json:"streams"`
	Consumers int    `json:"consumers"`
	Messages  uint64 `json:"messages,omitempty"`
	StoreB    uint64 `json:"store_bytes"`
	MemoryB   uint64 `json:"memory_bytes"`
	MaxStoreB int64  `json:"max_store_bytes,omitempty"`
	// APITotal and APIErrors are JetStream's counts of its API requests
	// and of those it answered with an error. Most such errors are not
	// failures: JetStream counts every "not found" it answers, and the
	// gate looks up, on purpose, streams, consumers and records that do
	// not exist yet (a sale's stream before it is made, a buyer's ticket
	// before the first join). Failures show as ServerErrors.
	APITotal  uint64 `json:"api_requests"`
	APIErrors uint64 `json:"api_errors"`
	// The same since the gate's first reading, once it had started.
	APITotalSinceStart  uint64 `json:"api_requests_since_start"`
	APIErrorsSinceStart uint64 `json:"api_errors_since_start"`
	// Cluster is the meta group when JetStream is clustered: its leader and
	// the other servers, with how far behind each is.
	Cluster *ledger.Replication `json:"cluster,omitempty"`
	// Error is why the figures above could not be read this time.
	Error string `json:"error,omitempty"`
}

// SaleStatus is a sale's report with the console's derived figures.
type SaleStatus struct {
	admission.SaleReport
	// DrainState judges the drain from the queue's trend over the last
	// five seconds (one of the Drain constants); KeepingUp is its yes or
	// no: a drain is attached and the queue is empty or not growing.
	// AdmitRate is the orders admitted per second over that window, and
	// QueueTrend how many orders a second the queue grew by (negative:
	// it shrinks); both absent until the window spans two seconds.
	DrainState string   `json:"drain_state"`
	KeepingUp  bool     `json:"keeping_up"`
	AdmitRate  *float64 `json:"admit_rate,omitempty"`
	QueueTrend *float64 `json:"queue_trend,omitempty"`
	// AnswersPerSecond are this gate's answers per second by reason over
	// the last minute, one point per second, oldest first; AnswersAt are
	// the points' times (Unix seconds).
	AnswersAt        []int64              `json:"answers_at"`
	AnswersPerSecond map[string][]float64 `json:"answers_per_second"`
}

// DrainProcess is a drain-only process's figures (sluice drain).
type DrainProcess struct {
	Backend string `json:"backend"`
}

type consoleSample struct {
	at       time.Time
	answers  map[string]int64
	depth    int64 // the queue
	admitted int64
	drained  int64
}

// errorSample is the gate's count of 5xx answers at a time.
type errorSample struct {
	at time.Time
	n  uint64
}

type console struct {
	s       *Server
	started time.Time
	version string
	goVer   string

	mu      sync.Mutex
	samples map[string][]consoleSample // per sale, oldest first, at most consoleWindow+1
	errs    []errorSample              // oldest first, at most consoleWindow+1
	js      JetStreamState
	apiBase *JetStreamState // the first reading, for the counts since the start
	mem     runtime.MemStats
	rss     uint64
}

func newConsole(s *Server) *console {
	c := &console{s: s, started: time.Now(), samples: map[string][]consoleSample{}}
	c.version, c.goVer = buildVersion()
	return c
}

// sample runs once a second in the background.
func (c *console) sample(ctx context.Context) {
	now := time.Now()
	js := c.readJetStream(ctx)
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	rss := readRSS()
	var (
		reports []admission.SaleReport
		errs    uint64
	)
	if c.s.gate != nil {
		reports = c.s.gate.Reports()
		errs = c.s.gate.ServerErrors()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, errorSample{at: now, n: errs})
	if len(c.errs) > consoleWindow+1 {
		c.errs = append(c.errs[:0], c.errs[len(c.errs)-consoleWindow-1:]...)
	}
	if js.Error == "" && js.Connected {
		if c.apiBase == nil || js.APITotal < c.apiBase.APITotal { // a restarted server counts from 0
			base := js
			c.apiBase = &base
		}
		js.APITotalSinceStart = js.APITotal - c.apiBase.APITotal
		js.APIErrorsSinceStart = js.APIErrors - c.apiBase.APIErrors
	}
	c.js, c.mem, c.rss = js, mem, rss
	seen := make(map[string]bool, len(reports))
	for _, r := range reports {
		seen[r.Sale] = true
		ss := append(c.samples[r.Sale], consoleSample{at: now, answers: r.Answers, depth: r.QueueDepth,
			admitted: r.Admitted, drained: r.Drained})
		if len(ss) > consoleWindow+1 {
			ss = append(ss[:0], ss[len(ss)-consoleWindow-1:]...)
		}
		c.samples[r.Sale] = ss
	}
	for name := range c.samples {
		if !seen[name] {
			delete(c.samples, name)
		}
	}
}

func (c *console) readJetStream(ctx context.Context) JetStreamState {
	b := c.s.broker
	st := JetStreamState{Connected: b.Conn.IsConnected(), URL: b.Conn.ConnectedUrlRedacted(), Embedded: b.Server() != nil}
	if ns := b.Server(); ns != nil {
		st.Server = ns.Name()
		info, err := ns.Jsz(&server.JSzOptions{Limit: 1})
		if err != nil {
			st.Error = err.Error()
			return st
		}
		st.Streams, st.Consumers, st.Messages = info.Streams, info.Consumers, info.Messages
		st.StoreB, st.MemoryB, st.MaxStoreB = info.Store, info.Memory, info.Config.MaxStore
		st.APITotal, st.APIErrors = info.API.Total, info.API.Errors
		if m := info.Meta; m != nil && (m.Size > 1 || len(m.Replicas) > 0) {
			r := &ledger.Replication{Cluster: m.Name, Leader: m.Leader, Peers: make([]ledger.Peer, 0, len(m.Replicas))}
			for _, p := range m.Replicas {
				r.Peers = append(r.Peers, ledger.Peer{Name: p.Name, Current: p.Current, Offline: p.Offline,
					ActiveSeconds: p.Active.Seconds(), Lag: p.Lag})
			}
			st.Cluster = r
		}
		return st
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ai, err := c.s.ledger.JetStream().AccountInfo(actx)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Streams, st.Consumers = ai.Streams, ai.Consumers
	st.StoreB, st.MemoryB, st.MaxStoreB = ai.Store, ai.Memory, ai.Limits.MaxStore
	st.APITotal, st.APIErrors = ai.API.Total, ai.API.Errors
	return st
}

// status is the console's JSON: the gate's figures now, the sampler's
// last reading for the rest.
func (c *console) status() Status {
	now := time.Now()
	st := Status{Time: now, Admin: c.s.cfg.AdminToken != "", Sales: []SaleStatus{}}
	st.Ready, _ = c.s.ready()
	var reports []admission.SaleReport
	if c.s.gate != nil {
		reports = c.s.gate.Reports()
		st.LedgerRefusing = c.s.gate.LedgerRefusing()
		st.Waiters, st.MaxWaiters = c.s.gate.Waiters()
		st.ServerErrors = c.s.gate.ServerErrors()
	}
	if c.s.cfg.DrainOnly {
		st.Drain = &DrainProcess{Backend: c.s.cfg.Backend}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := ProcessStatus{Command: c.s.cfg.command(), Role: c.s.cfg.role(), Version: c.version, GoVersion: c.goVer,
		StartedAt: c.started, UptimeSeconds: now.Sub(c.started).Seconds(), Goroutines: runtime.NumGoroutine(),
		HeapBytes: c.mem.HeapAlloc, SysBytes: c.mem.Sys, RSSBytes: c.rss, GCCycles: c.mem.NumGC,
		GCPauseTotalSeconds: float64(c.mem.PauseTotalNs) / 1e9, GCCPUFraction: c.mem.GCCPUFraction}
	if c.mem.NumGC > 0 {
		p.GCPauseSeconds = float64(c.mem.PauseNs[(c.mem.NumGC+255)%256]) / 1e9
	}
	if c.s.cfg.MemoryLimit > 0 {
		p.MemoryLimitBytes = c.s.cfg.MemoryLimit
	}
	if c.s.apiLn != nil {
		p.API = c.s.APIAddr()
	}
	st.Process = p
	st.JetStream = c.js
	if len(c.errs) > 0 {
		// Against the oldest sample, a minute ago once the gate is
		// that old: the count only grows.
		st.ServerErrorsLastMinute = st.ServerErrors - min(st.ServerErrors, c.errs[0].n)
	}
	for _, r := range reports {
		st.Sales = append(st.Sales, c.saleStatus(r, now))
	}
	return st
}

// saleStatus derives the rates and the drain's state from the sale's
// samples; under c.mu.
func (c *console) saleStatus(r admission.SaleReport, now time.Time) SaleStatus {
	ss := c.samples[r.Sale]
	out := SaleStatus{SaleReport: r, AnswersAt: []int64{}, AnswersPerSecond: map[string][]float64{}}
	for i := 1; i < len(ss); i++ {
		out.AnswersAt = append(out.AnswersAt, ss[i].at.Unix())
	}
	for i := 1; i < len(ss); i++ {
		dt := ss[i].at.Sub(ss[i-1].at).Seconds()
		for reason, n := range ss[i].answers {
			series, ok := out.AnswersPerSecond[reason]
			if !ok {
				series = make([]float64, len(ss)-1)
				out.AnswersPerSecond[reason] = series
			}
			if d := n - ss[i-1].answers[reason]; d > 0 && dt > 0 {
				series[i-1] = float64(d) / dt
			}
		}
	}
	out.DrainState, out.AdmitRate, out.QueueTrend = judgeDrain(r, ss, now)
	out.KeepingUp = out.DrainState == DrainKeepingUp || out.DrainState == DrainIdle
	return out
}

// judgeDrain tells whether the drain keeps up with what the gate admits,
// from the queue's trend: now (r) against the newest sample at least
// keepUpWindow old (or the oldest, once it is judgeSpan old). A queue
// that grew by more than a twentieth of what was drained meanwhile (the
// slack of figures refreshed a few times a second) is falling behind;
// so is one that did not move while nothing was drained for a whole
// window. A queue at its bound cannot grow: the gate answers busy, and
// the drain sets the pace, which is said as such.
func judgeDrain(r admission.SaleReport, ss []consoleSample, now time.Time) (state string, admitRate, trend *float64) {
	if !r.DrainAttached {
		return DrainNone, nil, nil
	}
	var base *consoleSample
	for i := len(ss) - 1; i >= 0; i-- {
		if now.Sub(ss[i].at) >= keepUpWindow {
			base = &ss[i]
			break
		}
	}
	if base == nil && len(ss) > 0 && now.Sub(ss[0].at) >= judgeSpan {
		base = &ss[0]
	}
	var grown, drained int64
	if base != nil {
		span := now.Sub(base.at).Seconds()
		a := float64(r.Admitted-base.admitted) / span
		g := float64(r.QueueDepth-base.depth) / span
		admitRate, trend = &a, &g
		grown, drained = r.QueueDepth-base.depth, r.Drained-base.drained
	}
	switch {
	case r.QueueDepth == 0 && (base == nil || drained == 0):
		return DrainIdle, admitRate, trend
	case r.QueueDepth == 0:
		return DrainKeepingUp, admitRate, trend
	case r.QueueBound > 0 && r.QueueDepth >= r.QueueBound:
		return DrainQueueFull, admitRate, trend
	case base == nil:
		return DrainJudging, nil, nil
	case grown > drained/20:
		return DrainFallingBehind, admitRate, trend
	case drained == 0 && now.Sub(base.at) >= keepUpWindow:
		return DrainFallingBehind, admitRate, trend // stalled
	case drained == 0:
		return DrainJudging, admitRate, trend
	}
	return DrainKeepingUp, admitRate, trend
}

func (c *console) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSONStatus(w, c.status())
}

func writeJSONStatus(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

// serveIndex is / : the console for a browser, the text index for curl.
func (c *console) serveIndex(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		c.s.opsIndex(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Everything the page needs is in it; it talks only to this listener.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
	h.Set("X-Frame-Options", "DENY")
	_, _ = w.Write(consoleHTML)
}

// readRSS is the process's resident set from /proc, or 0 off Linux.
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
