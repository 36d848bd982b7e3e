package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes a run. Zero values mean the documented defaults.
type Config struct {
	// Target is the gate's base URL, e.g. http://127.0.0.1:8080.
	Target string
	// Sale is the sale to buy from.
	Sale    string
	Profile Profile
	// MaxRequests bounds the requests sent; default the profile's total.
	MaxRequests uint64
	// MaxDuration bounds the run; default the profile's duration plus
	// Timeout. Requests still unsent then are counted as dropped.
	MaxDuration time.Duration
	// Connections bounds the requests in flight (and so the connections);
	// default 256.
	Connections int
	// Timeout bounds one request; default 10 s.
	Timeout time.Duration
	// NoKeepAlive opens a connection per request.
	NoKeepAlive bool
	// LateAfter: a request sent later than this after its intended time
	// counts as late; default 5 ms.
	LateAfter time.Duration
	Mix       Mix
	// AllowRemote lets the target be other than a loopback or private
	// address.
	AllowRemote bool
	// Client replaces the HTTP client (tests).
	Client *http.Client
}

func (c *Config) defaults() {
	if c.MaxRequests == 0 {
		c.MaxRequests = c.Profile.Total()
	}
	if c.Connections <= 0 {
		c.Connections = 256
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxDuration <= 0 {
		c.MaxDuration = c.Profile.Duration() + c.Timeout
	}
	if c.LateAfter <= 0 {
		c.LateAfter = 5 * time.Millisecond
	}
}

// Result is one request's fate.
type Result struct {
	Seq      uint64        `json:"seq"`
	Kind     Kind          `json:"kind"`
	Buyer    string        `json:"buyer,omitempty"`
	Key      string        `json:"key,omitempty"`
	Intended time.Time     `json:"intended"`
	Sent     time.Time     `json:"sent"`
	Latency  time.Duration `json:"latency"` // from the intended send time to the answer
	Status   int           `json:"status"`
	Reason   string        `json:"reason,omitempty"`
	OrderID  string        `json:"order_id,omitempty"`
	Err      string        `json:"error,omitempty"`
}

// Late says the request left later than allowed after its intended time.
func (r Result) late(after time.Duration) bool { return r.Sent.Sub(r.Intended) > after }

// Run is a running attack. Results is closed once every request is done.
type Run struct {
	Results   <-chan Result
	Start     time.Time
	scheduled atomic.Uint64
	dropped   atomic.Uint64
	done      chan struct{}
}

// Scheduled is how many requests were handed to a connection so far.
func (r *Run) Scheduled() uint64 { return r.scheduled.Load() }

// Dropped is how many requests the schedule wanted sent before the run
// ended (its time bound, or ctx) that were never sent: the generator or
// its connections could not keep up. Known once Done is closed.
func (r *Run) Dropped() uint64 { return r.dropped.Load() }

// Done is closed when the run has finished.
func (r *Run) Done() <-chan struct{} { return r.done }

// CheckTarget refuses targets outside loopback and private networks
// unless allowRemote.
func CheckTarget(target string, allowRemote bool) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadtest: target %q: want http(s)://host:port", target)
	}
	if allowRemote {
		return nil
	}
	addrs, err := net.LookupIP(u.Hostname())
	if err != nil {
		return fmt.Errorf("loadtest: target %q: %w", target, err)
	}
	for _, a := range addrs {
		if !a.IsLoopback() && !a.IsPrivate() {
			return fmt.Errorf("loadtest: target %s is %s, neither loopback nor private: pass --allow-remote if you mean it", u.Hostname(), a)
		}
	}
	return nil
}

// Attack starts a run. Cancelling ctx stops it early; Results is closed
// either way.
func Attack(ctx context.Context, cfg Config) (*Run, error) {
	cfg.defaults()
	if err := cfg.Profile.Validate(); err != nil {
		return nil, err
	}
	if err := CheckTarget(cfg.Target, cfg.AllowRemote); err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			MaxIdleConns:        cfg.Connections,
			MaxIdleConnsPerHost: cfg.Connections,
			MaxConnsPerHost:     cfg.Connections,
			IdleConnTimeout:     30 * time.Second,
			DisableKeepAlives:   cfg.NoKeepAlive,
			DisableCompression:  true, // no gzip negotiation: answers are small
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
		}}
	}
	results := make(chan Result, 4096)
	run := &Run{Results: results, done: make(chan struct{})}
	jobs := make(chan job)
	mix := newMixer(cfg.Mix, cfg.Sale)
	base := strings.TrimRight(cfg.Target, "/")
	ctx, cancel := context.WithTimeout(ctx, cfg.MaxDuration)

	var workers sync.WaitGroup
	for range cfg.Connections {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				results <- send(ctx, client, base, j)
			}
		}()
	}
	run.Start = time.Now()
	go func() {
		defer func() {
			// Everything due by now (within the bounds) and not sent is
			// dropped.
			due := min(cfg.Profile.CountBy(time.Since(run.Start)), cfg.MaxRequests)
			if sent := run.scheduled.Load(); due > sent {
				run.dropped.Store(due - sent)
			}
			close(jobs)
			workers.Wait()
			cancel()
			close(results)
			close(run.done)
		}()
		for n := uint64(0); n < cfg.MaxRequests; n++ {
			due, ok := cfg.Profile.Due(n)
			if !ok {
				return
			}
			intended := run.Start.Add(due)
			if wait := time.Until(intended); wait > 200*time.Microsecond {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
			j := job{seq: n, intended: intended, req: mix.draw()}
			select {
			case jobs <- j:
				run.scheduled.Add(1)
			case <-ctx.Done():
				return // this request and the rest of the schedule unsent
			}
		}
	}()
	return run, nil
}

type job struct {
	seq      uint64
	intended time.Time
	req      request
}

func send(ctx context.Context, client *http.Client, base string, j job) Result {
	res := Result{Seq: j.seq, Kind: j.req.kind, Buyer: j.req.buyer, Key: j.req.key, Intended: j.intended, Sent: time.Now()}
	// Latency runs from the intended time, or from the send when the
	// scheduler let it go a hair early (it does not sleep under 200 µs).
	from := j.intended
	if res.Sent.Before(from) {
		from = res.Sent
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sales/"+url.PathEscape(j.req.sale)+"/orders", strings.NewReader(j.req.body))
	if err != nil {
		res.Err = err.Error()
		res.Latency = time.Since(from)
		return res
	}
	req.Header.Set("Content-Type", j.req.ctype)
	req.Header.Set("Accept", "application/json")
	if j.req.key != "" {
		req.Header.Set("Idempotency-Key", j.req.key)
	}
	resp, err := client.Do(req)
	if err != nil {
		res.Err = shortErr(err)
		res.Latency = time.Since(from)
		return res
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	res.Latency = time.Since(from)
	res.Status = resp.StatusCode
	res.OrderID, res.Reason = jsonField(body, "order_id"), jsonField(body, "reason")
	if res.Status == http.StatusAccepted && res.Reason == "" {
		res.Reason = "admitted"
		if resp.Header.Get("Idempotent-Replayed") == "true" {
			res.Reason = "replayed"
		}
	}
	return res
}

// shortErr names a transport error without the URL, so errors group.
func shortErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "dial tcp") {
		s = "dial: " + s[i+2:]
	}
	return s
}

// jsonField finds a top-level string field of a small JSON object without
// decoding all of it (the gate's answers are flat objects); "" if absent.
func jsonField(body []byte, name string) string {
	key := []byte(`"` + name + `":"`)
	i := bytes.Index(body, key)
	if i < 0 {
		return ""
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		// An escaped string: decode it properly.
		var doc map[string]any
		if json.Unmarshal(body, &doc) == nil {
			v, _ := doc[name].(string)
			return v
		}
		return ""
	}
	return string(rest[:j])
}
