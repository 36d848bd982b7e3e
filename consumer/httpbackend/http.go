// Package httpbackend forwards each admitted order to an existing HTTP
// purchase endpoint: the case of a shop that has one and puts sluice in
// front of it.
//
// Every call is a POST of the order as JSON with the order id as its
// Idempotency-Key, so the endpoint can make retries safe. A 2xx confirms
// the order; 409 and 410 (and other 4xx but 408, 425 and 429) reject it
// for good, with the body's "reason" when it has one; 5xx, 408, 425, 429,
// timeouts and connection errors are retried later.
package httpbackend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"sluice/consumer"
)

// Config configures a Backend. Zero values mean the documented defaults.
type Config struct {
	URL string
	// Concurrency bounds the calls under way at once; default 8.
	Concurrency int
	// Timeout bounds one call; default 10 s, as the drain's BackendTimeout.
	Timeout time.Duration
	// Client, nil means a client with keep-alive sized to Concurrency.
	Client *http.Client
}

// Backend calls the purchase endpoint. It is safe for concurrent use.
type Backend struct {
	url    string
	where  string
	client *http.Client
	sem    chan struct{}
	to     time.Duration
}

var _ consumer.Backend = (*Backend)(nil)

// New returns a Backend for cfg.URL.
func New(cfg Config) (*Backend, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httpbackend: bad URL %q", cfg.URL)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: cfg.Concurrency,
			MaxConnsPerHost:     cfg.Concurrency,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	// What the endpoint is, without what may be secret in its URL: a
	// password, or a token in the query.
	where := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return &Backend{url: cfg.URL, where: where.String(), client: cfg.Client,
		sem: make(chan struct{}, cfg.Concurrency), to: cfg.Timeout}, nil
}

// Describe is the endpoint's URL without its user information, query
// and fragment.
func (b *Backend) Describe() string { return b.where }

// EnsureSale does nothing: the endpoint keeps its own stock.
func (b *Backend) EnsureSale(context.Context, string, int64) error { return nil }

// Close releases idle connections.
func (b *Backend) Close() error {
	b.client.CloseIdleConnections()
	return nil
}

// BoundsEachCall tells the drainer that Commit bounds each of its calls
// with Timeout: a batch's orders wait their turn for a slot, so the batch
// as a whole takes longer than one call.
func (b *Backend) BoundsEachCall() {}

// PacesEachCall tells the drainer that Commit waits for the drain's pace
// (consumer.PaceOrder) before each call, once it holds the call's slot.
func (b *Backend) PacesEachCall() {}

// Commit forwards each order of the batch, at most Concurrency at once
// across all batches, each when the drain's pace lets it, and returns
// each order's result.
func (b *Backend) Commit(ctx context.Context, orders []consumer.Order) ([]consumer.Result, error) {
	results := make([]consumer.Result, len(orders))
	var wg sync.WaitGroup
	for i := range orders {
		select {
		case b.sem <- struct{}{}:
		case <-ctx.Done():
			// Never sent: nothing to hold against these orders.
			err := fmt.Errorf("%w: no call slot: %w", consumer.ErrUnavailable, ctx.Err())
			for j := i; j < len(orders); j++ {
				results[j] = consumer.Result{Outcome: consumer.Retry, Err: err}
			}
			wg.Wait()
			return results, nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := consumer.PaceOrder(ctx); err != nil {
				// Never sent: the batch was given up waiting for the pace.
				results[i] = consumer.Result{Outcome: consumer.Retry, Err: err}
				<-b.sem
				return
			}
			var abandoned bool
			results[i], abandoned = b.forward(ctx, orders[i])
			if abandoned {
				// The endpoint may still be working on a call we gave up
				// on; keep its slot a little longer so that the bound
				// holds as the endpoint sees it.
				time.Sleep(abandonGrace)
			}
			<-b.sem
		}()
	}
	wg.Wait()
	return results, nil
}

// abandonGrace is how long the slot of a call that timed out stays taken.
const abandonGrace = 100 * time.Millisecond

func (b *Backend) forward(ctx context.Context, o consumer.Order) (consumer.Result, bool) {
	// The payload goes as the gate made it, byte for byte: json.Marshal
	// would write its <, > and & as \u003c….
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return consumer.Result{Outcome: consumer.Retry, Err: err}, false
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	ctx, cancel := context.WithTimeout(ctx, b.to)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url, bytes.NewReader(body))
	if err != nil {
		return consumer.Result{Outcome: consumer.Retry, Err: err}, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", o.ID)
	resp, err := b.client.Do(req)
	if err != nil {
		abandoned := ctx.Err() != nil
		return consumer.Result{Outcome: consumer.Retry, Err: fmt.Errorf("%w: %w", consumer.ErrUnavailable, err)}, abandoned
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return consumer.Result{Outcome: consumer.Confirmed}, false
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests, code >= 500:
		return consumer.Result{Outcome: consumer.Retry, Err: fmt.Errorf("%w: endpoint answered %d", errRetry, code)}, false
	default:
		return consumer.Result{Outcome: consumer.Rejected, Reason: reasonOf(code, raw)}, false
	}
}

var errRetry = errors.New("httpbackend: retryable answer")

// reasonOf takes the body's "reason" (problem+json) or names the status.
func reasonOf(code int, body []byte) string {
	var doc struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Reason != "" && len(doc.Reason) <= 64 {
		return doc.Reason
	}
	switch code {
	case http.StatusConflict:
		return consumer.ReasonAlreadyOrdered
	case http.StatusGone:
		return consumer.ReasonSoldOut
	}
	return "backend_" + strconv.Itoa(code)
}
