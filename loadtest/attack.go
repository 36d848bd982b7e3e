package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
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
	// PreferWait, when set, asks the gate to hold each answer until the
	// order is decided (Prefer: wait=N, whole seconds): admitted orders
	// then answer 201 or their refusal when the drain is quick enough.
	PreferWait time.Duration
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
	// Decided: the answer is the order's decision (Prefer: wait), 201 or
	// a refusal naming the backend's reason; OrderID is then the order's.
	Decided bool `json:"decided,omitempty"`
	// Variant is the variant ordered, in a sale with variants.
	Variant string `json:"variant,omitempty"`
	// left are the variants still on sale a variant_sold_out answer named.
	left []string
}

// variantSoldOut is the reason of an order whose variant is sold out.
const variantSoldOut = "variant_sold_out"

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
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
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
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			w := &worker{reasons: interner{}, uris: map[string]string{}}
			for j := range jobs {
				if over(ctx) {
					continue // the run is over: unsent, counted as dropped
				}
				run.scheduled.Add(1)
				res := send(ctx, client, req, resp, w, base, cfg, j)
				results <- res
				// A buyer told their variant is sold out orders another
				// of those left, at once, once per variant at most.
				for range cfg.Mix.Variants {
					if res.Reason != variantSoldOut || over(ctx) {
						break
					}
					next, ok := mix.switched(j.req, res.left)
					if !ok {
						break
					}
					j = job{seq: j.seq, intended: time.Now(), req: next}
					res = send(ctx, client, req, resp, w, base, cfg, j)
					results <- res
				}
			}
		}()
	}
	run.Start = time.Now()
	go func() {
		defer func() {
			stoppedAt := time.Since(run.Start)
			close(jobs)
			workers.Wait()
			cancel()
			client.CloseIdleConnections()
			// Everything due when the dispatching stopped (within the
			// bounds) and not sent is dropped, jobs the workers skipped
			// because the run had ended included.
			due := min(cfg.Profile.CountBy(stoppedAt), cfg.MaxRequests)
			if sent := run.scheduled.Load(); due > sent {
				run.dropped.Store(due - sent)
			}
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
			if over(ctx) {
				return
			}
			j := job{seq: n, intended: intended, req: mix.draw()}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return // this request and the rest of the schedule unsent
			}
		}
	}()
	return run, nil
}

// over says the run has reached its end: cancelled, or past its deadline
// (which the clock can pass a moment before ctx's timer fires).
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

type job struct {
	seq      uint64
	intended time.Time
	req      request
}

// newClient is the connection pool to the target: one connection per
// worker at most, kept alive unless NoKeepAlive. fasthttp rather than
// net/http: on a machine the generator shares with the gate, every
// microsecond of CPU the client spends per request is taken from the gate,
// and net/http's client spends about three times what wrk does.
func newClient(cfg Config) (*fasthttp.HostClient, error) {
	u, err := url.Parse(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("loadtest: target: %w", err)
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return &fasthttp.HostClient{
		Addr:                addr,
		Name:                "sluice-loadtest",
		IsTLS:               u.Scheme == "https",
		MaxConns:            cfg.Connections,
		MaxConnWaitTimeout:  cfg.Timeout,
		MaxIdleConnDuration: 5 * time.Second,
		// A plain dialer: fasthttp's default keeps a DNS cache with a
		// goroutine that lives as long as the process.
		Dial: func(addr string) (net.Conn, error) {
			return (&net.Dialer{Timeout: cfg.Timeout}).Dial("tcp", addr)
		},
		DisableHeaderNamesNormalizing: true,
		MaxResponseBodySize:           64 << 10,
		ReadBufferSize:                8 << 10,
	}, nil
}

// worker is what one connection's worker keeps between requests.
type worker struct {
	reasons interner
	uris    map[string]string // sale → its order endpoint
}

func (w *worker) uri(base, sale string) string {
	u, ok := w.uris[sale]
	if !ok {
		u = base + "/v1/sales/" + url.PathEscape(sale) + "/orders"
		if len(w.uris) < 16 {
			w.uris[sale] = u
		}
	}
	return u
}

// send makes one request, reusing the worker's req and resp.
func send(ctx context.Context, client *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response, w *worker, base string, cfg Config, j job) Result {
	res := Result{Seq: j.seq, Kind: j.req.kind, Buyer: j.req.buyer, Key: j.req.key, Variant: j.req.variant, Intended: j.intended, Sent: time.Now()}
	// Latency runs from the intended time, or from the send when the
	// scheduler let it go a hair early (it does not sleep under 200 µs).
	from := j.intended
	if res.Sent.Before(from) {
		from = res.Sent
	}
	req.Reset()
	resp.Reset()
	req.SetRequestURI(w.uri(base, j.req.sale))
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType(j.req.ctype)
	req.Header.Set("Accept", "application/json")
	if j.req.key != "" {
		req.Header.Set("Idempotency-Key", j.req.key)
	}
	if cfg.NoKeepAlive {
		req.SetConnectionClose()
	}
	if cfg.PreferWait > 0 {
		req.Header.Set("Prefer", "wait="+strconv.Itoa(int(cfg.PreferWait/time.Second)))
	}
	req.SetBodyString(j.req.body)
	deadline := res.Sent.Add(cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	err := ctx.Err()
	if err == nil {
		err = client.DoDeadline(req, resp, deadline)
	}
	res.Latency = time.Since(from)
	if err != nil {
		res.Err = shortErr(err)
		return res
	}
	body := resp.Body()
	res.Status = resp.StatusCode()
	if id := jsonField(body, orderIDKey); id != nil {
		res.OrderID = string(id)
	}
	res.Reason = w.reasons.get(jsonField(body, reasonKey))
	if res.Reason == variantSoldOut {
		var p struct {
			Left []string `json:"variants_left"`
		}
		_ = json.Unmarshal(body, &p)
		res.left = p.Left
	}
	res.Decided = res.Status == http.StatusCreated || jsonField(body, backendReasonKey) != nil
	if res.Status == http.StatusCreated && res.Reason == "" {
		res.Reason = "confirmed"
	}
	if res.Status == http.StatusAccepted && res.Reason == "" {
		res.Reason = "admitted"
		if string(resp.Header.Peek("Idempotent-Replayed")) == "true" {
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
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "dial tcp") {
		s = "dial: " + s[i+2:]
	}
	return s
}

// Keys of the answer fields the generator reads.
var (
	orderIDKey = []byte(`"order_id":"`)
	reasonKey  = []byte(`"reason":"`)
	// backendReasonKey marks a refusal that is an admitted order's decision.
	backendReasonKey = []byte(`"backend_reason":"`)
)

// jsonField finds a top-level string field of a small JSON object without
// decoding all of it (the gate's answers are flat objects); nil if absent.
// key is `"name":"`.
func jsonField(body, key []byte) []byte {
	i := bytes.Index(body, key)
	if i < 0 {
		return nil
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		// An escaped string: decode it properly.
		var doc map[string]any
		if json.Unmarshal(body, &doc) == nil {
			v, _ := doc[string(key[1:len(key)-3])].(string)
			return []byte(v)
		}
		return nil
	}
	return rest[:j]
}

// interner hands out one string per distinct reason a worker sees, so
// that a million sold-out answers do not make a million strings.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in) < 256 {
		in[s] = s
	}
	return s
}
