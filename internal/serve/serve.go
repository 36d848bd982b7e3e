// Package serve wires a whole gate together: the embedded (or external)
// JetStream, the sale ledger and its refresher, the public API and the ops
// listener. cmd/sluice parses configuration into a Config and calls Run;
// tests call Start and Shutdown to run gates in process.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"

	"sluice/admission"
	"sluice/consumer"
	"sluice/internal/broker"
	"sluice/internal/buyertoken"
	"sluice/internal/drain"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/internal/periodic"
	"sluice/internal/waitingroom"
)

// Config is everything `sluice serve` is told. Zero values mean the
// documented defaults.
type Config struct {
	Listen    string // public API, default ":8080"
	OpsListen string // metrics, health, pprof, admin; default "127.0.0.1:9464"
	DataDir   string // JetStream store, default "./sluice-data"

	// TLSCert and TLSKey are PEM files: with both, the public API speaks
	// HTTPS only, and Reload (SIGHUP under Run) reads them again.
	TLSCert, TLSKey string

	// Sales to provision at start. A sale with only Name and Stock set
	// (from --sale NAME=STOCK) keeps its other settings if it exists.
	Sales []SaleSpec
	// NoDemo: do not create the "demo" sale when no sale exists.
	NoDemo bool

	NATSURL    string // join an external NATS instead of embedding one
	NATSListen string // let the embedded server accept connections
	ServerName string
	// Cluster of embedded servers: this gate's route listener and its peers.
	ClusterName   string
	ClusterListen string
	ClusterRoutes []string
	// Route security (broker.Config): credentials every route presents,
	// and TLS verified both ways against ClusterTLSCA.
	ClusterUser, ClusterPassword                string
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
	Replicas                                    int
	Sync                                        broker.Sync
	SyncEvery                                   time.Duration
	MaxStore                                    int64

	AdminToken  string
	SoldOutPage string // an HTML file served to browsers on sold out
	// Pages is a directory of the operator's page templates (see
	// overflow.LoadPages); empty means the built-in pages.
	Pages string

	// MaxConns bounds the public listener's open connections (default
	// 262,144); MaxConnsPerIP bounds them per client address (0: none).
	// Past either, a new connection is answered 503 or 429 and closed.
	MaxConns, MaxConnsPerIP int
	// ReduceMemory releases a public connection's buffers between
	// requests: less memory per idle connection, one more read per request.
	ReduceMemory bool

	// NoDrain runs the gate without a drain (drainers run elsewhere).
	NoDrain bool
	// DrainOnly runs the drain and the ops listener, no gate (sluice drain).
	DrainOnly bool
	// Backend names where orders drain to (see openBackend); empty means
	// SQLite at <data-dir>/orders.db.
	Backend string
	Drain   drain.Config

	Gate admission.Config
	// BuyerToken verifies the shop's buyer tokens (--buyer-token-*).
	BuyerToken BuyerTokenConfig

	// GCPercent is applied by cmd/sluice (see its setGC); serve itself
	// leaves the process's GC alone.
	GCPercent int
	// GCHeadroom bounds the heap's growth beyond the live heap between
	// collections, once the live heap is bigger than it (cmd/sluice's
	// setGC, internal/gctune); 0 keeps GCPercent fixed.
	GCHeadroom int64
	// MemoryLimit is the Go runtime's soft memory limit in bytes, applied
	// by cmd/sluice likewise (GOMEMLIMIT wins); 0 means none.
	MemoryLimit int64

	// Refresh is how often sale states are read from JetStream; 250 ms.
	Refresh         time.Duration
	ShutdownTimeout time.Duration // default 30 s
	Logger          *slog.Logger
	Registry        *prometheus.Registry // nil: a new one
}

// BuyerTokenConfig names the key of the shop's buyer tokens: a file
// holding an HS256 secret, or the URL of the shop's JWKS; neither leaves
// buyers to the body or --buyer-header.
type BuyerTokenConfig struct {
	SecretFile string
	JWKSURL    string
	// Cookie names the cookie a browser's token comes in.
	Cookie           string
	Issuer, Audience string
}

func (c BuyerTokenConfig) set() bool { return c.SecretFile != "" || c.JWKSURL != "" }

// setting names the flag of the key c names, for its errors.
func (c BuyerTokenConfig) setting() string {
	if c.SecretFile != "" {
		return "buyer-token-secret-file"
	}
	return "buyer-token-jwks"
}

// buyerTokens starts the verifier c names.
func buyerTokens(ctx context.Context, c BuyerTokenConfig, log *slog.Logger) (*buyertoken.Verifier, error) {
	o := buyertoken.Options{JWKSURL: c.JWKSURL, Issuer: c.Issuer, Audience: c.Audience, Logger: log}
	if c.SecretFile != "" {
		b, err := readSecret(c.SecretFile)
		if err != nil {
			return nil, err
		}
		o.Secret = b
	}
	return buyertoken.New(ctx, o)
}

// tokenMetrics registers the buyer-token verifier's metrics: whether it
// holds keys (a gate without them answers every token 503), and for a
// JWKS when it last read it and its reads by outcome.
func tokenMetrics(reg prometheus.Registerer, v *buyertoken.Verifier, jwks bool) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_buyer_token_keys_up",
		Help: "1 when the gate can check buyer tokens (the shop's JWKS was read, or a secret); 0 while it never read the JWKS: orders and joins with a token are answered 503 buyer_keys_unavailable and /readyz is not ready.",
	}, func() float64 { return b2f(v.Ready()) }))
	if !jwks {
		return
	}
	ok := func() float64 { n, _, _ := v.Fetches(); return float64(n) }
	failed := func() float64 { _, n, _ := v.Fetches(); return float64(n) }
	help := "Reads of the shop's JWKS (at the start, retries, refreshes, tokens naming a key not held), by outcome."
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_buyer_token_keys_fetched_timestamp_seconds",
			Help: "When the shop's JWKS was last read successfully, as a Unix time; 0 before the first read.",
		}, func() float64 {
			if _, _, last := v.Fetches(); !last.IsZero() {
				return float64(last.UnixNano()) / 1e9
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sluice_buyer_token_key_fetches_total", Help: help,
			ConstLabels: prometheus.Labels{"outcome": "ok"}}, ok),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sluice_buyer_token_key_fetches_total", Help: help,
			ConstLabels: prometheus.Labels{"outcome": "error"}}, failed),
	)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SaleSpec is a sale to provision and whether it was fully specified.
type SaleSpec struct {
	ledger.Sale
	// StockOnly: only Name and Stock were given; keep the rest as stored.
	StockOnly bool
}

// Server is a running gate.
type Server struct {
	cfg     Config
	log     *slog.Logger
	broker  *broker.Broker
	ledger  *ledger.Ledger
	gate    *admission.Gate
	watcher *ledger.Watcher
	indexer *periodic.Loop // sold-out sales' orders into the gate's memory
	prober  *periodic.Loop // the store, while the ledger refuses writes
	pacer   *periodic.Loop // the waiting rooms' draw and pace
	js      jetstream.JetStream
	// roomStore, rooms and pace are the waiting rooms: their records,
	// this gate's copies of them, and their pace.
	roomStore *waitingroom.Store
	rooms     *waitingroom.Rooms
	pace      *waitingroom.Pacer
	tokens    *buyertoken.Verifier // the shop's buyer tokens, when set
	// probeFails counts the probes in a row that failed other than by a
	// full store, jsRestarted is when JetStream was last restarted in
	// process to clear a write error; the prober's goroutine owns both.
	probeFails  int
	jsRestarted time.Time
	// refollow: JetStream was restarted and the tracker must follow the
	// decisions stream again (tried at each probe until it does).
	refollow atomic.Bool
	// raiseWarned is when a failure to raise a sale's limit was last
	// logged; the refresh goroutine owns it.
	raiseWarned time.Time
	console     *console
	sampler     *periodic.Loop // the console's figures, once a second
	tracker     *orderstatus.Tracker
	backend     consumer.Backend
	drainer     *drain.Drainer
	api         *fasthttp.Server
	ops         *http.Server
	apiLn       net.Listener
	apiConns    *trackingListener // under apiLn, knows its connections
	cert        *certificate      // the public listener's, when TLS
	opsLn       net.Listener
	reg         *prometheus.Registry
	errc        chan error
	wg          sync.WaitGroup
	once        sync.Once
	shutErr     error
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.OpsListen == "" {
		c.OpsListen = "127.0.0.1:9464"
	}
	if c.DataDir == "" {
		c.DataDir = "./sluice-data"
	}
	if c.Refresh <= 0 {
		c.Refresh = 250 * time.Millisecond
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Sync == "" {
		c.Sync = broker.SyncInterval
	}
	if c.Gate.Logger == nil {
		c.Gate.Logger = c.Logger
	}
}

// command is the sluice command this process runs, for its messages.
func (c *Config) command() string {
	if c.DrainOnly {
		return "drain"
	}
	return "serve"
}

// role names what this process runs, for sluice_build_info.
func (c *Config) role() string {
	switch {
	case c.DrainOnly:
		return "drain"
	case c.NoDrain:
		return "gate"
	}
	return "gate+drain"
}

func (s *Server) serve(srv *http.Server, ln net.Listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
}

// retry runs a JetStream call with a short timeout per attempt until it
// succeeds, fails for good, or ctx ends: a cluster that is still electing
// its metadata leader, or settling streams several gates create at once,
// drops requests without an answer.
func retry[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	return retryEvery(ctx, 3*time.Second, f)
}

func retryEvery[T any](ctx context.Context, attempt time.Duration, f func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		v, err := f(actx)
		cancel()
		if err == nil || errors.Is(err, ledger.ErrInvalidSale) || errors.Is(err, ledger.ErrNoSale) || ctx.Err() != nil {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *Server) provision(ctx context.Context) error {
	sales := s.cfg.Sales
	if len(sales) == 0 && !s.cfg.NoDemo {
		existing, err := retry(ctx, s.ledger.States)
		if err != nil {
			return fmt.Errorf("serve: list sales: %w", err)
		}
		if len(existing) == 0 {
			sales = []SaleSpec{{Sale: ledger.Sale{Name: "demo", Stock: 1000}}}
		}
	}
	for _, spec := range sales {
		sale := spec.Sale
		if spec.StockOnly {
			st, err := retry(ctx, func(ctx context.Context) (ledger.SaleState, error) { return s.ledger.State(ctx, sale.Name) })
			switch {
			case err == nil:
				stock := sale.Stock
				sale = st.Sale
				sale.Stock = stock
			case !errors.Is(err, ledger.ErrNoSale):
				return fmt.Errorf("serve: sale %s: %w", sale.Name, err)
			}
		}
		prev, err := retry(ctx, func(ctx context.Context) (ledger.SaleState, error) {
			st, err := s.ledger.State(ctx, sale.Name)
			if errors.Is(err, ledger.ErrNoSale) {
				return ledger.SaleState{}, nil
			}
			return st, err
		})
		if err != nil {
			return fmt.Errorf("serve: sale %s: %w", sale.Name, err)
		}
		st, err := retry(ctx, func(ctx context.Context) (ledger.SaleState, error) { return s.ledger.EnsureSale(ctx, sale) })
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		if int64(st.Admitted) > sale.Capacity() {
			s.log.Warn("stock is below the orders already admitted: they stay, the sale is sold out",
				"sale", sale.Name, "stock", sale.Stock, "admitted", st.Admitted)
		}
		// A start that changes what a sale sells says so: a --sale s1=N
		// reused from an earlier walk-through must not reopen a sold-out
		// sale without a word, nor a config's past window close one.
		if prev.Limit > 0 && int64(prev.Admitted) >= prev.Limit && st.Limit > int64(st.Admitted) {
			s.log.Warn("the sale was sold out: its new stock opens it again",
				"sale", sale.Name, "stock_before", prev.Sale.Stock, "stock", sale.Stock, "admitted", st.Admitted)
		}
		if sale.PhaseAt(time.Now()) == ledger.Closed {
			s.log.Warn("the sale is closed: its ends_at is past, and it takes no order", "sale", sale.Name, "ends_at", sale.EndsAt)
		}
		s.log.Info("sale provisioned", "sale", sale.Name, "stock", sale.Stock, "admitted", st.Admitted)
	}
	return nil
}

func (s *Server) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := s.ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if s.gate != nil {
		mux.Handle("/admin/", s.gate.AdminHandler(s.cfg.AdminToken))
	}
	mux.HandleFunc("GET /{$}", s.console.serveIndex)
	mux.HandleFunc("GET /status", s.console.serveStatus)
	return mux
}

// opsIndex is / on the ops listener: what this process is and what the
// listener serves.
func (s *Server) opsIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, "sluice %s (%s): ops listener\n\n", s.cfg.command(), s.cfg.role())
	fmt.Fprintln(w, "GET /               the console (in a browser; this index otherwise)")
	fmt.Fprintln(w, "GET /status         every sale, JetStream and this process, as JSON (sluice status)")
	fmt.Fprintln(w, "GET /metrics        Prometheus metrics")
	fmt.Fprintln(w, "GET /healthz        the process is up")
	fmt.Fprintln(w, "GET /readyz         ready to serve (JetStream reached, the shop's keys read, not shutting down)")
	fmt.Fprintln(w, "GET /debug/pprof/   Go profiles")
	if s.gate != nil {
		state := "off (start with --admin-token)"
		if s.cfg.AdminToken != "" {
			state = "on (Authorization: Bearer <token>)"
		}
		fmt.Fprintf(w, "/admin/sales        the admin API: %s\n", state)
		fmt.Fprintf(w, "\nThe public API listens on %s; its OpenAPI document is GET /openapi.yaml there.\n", s.APIAddr())
	}
}

// ready is what /readyz says, and why not. A gate that has never read
// the shop's keys is not ready: it would answer every buyer 503, and a
// load balancer should send them to a gate that has (/healthz, the
// liveness, stays ok: restarting it would not read the keys sooner).
func (s *Server) ready() (bool, string) {
	switch {
	case !s.broker.Conn.IsConnected():
		return false, "not connected to NATS"
	case s.gate != nil && !s.gate.Ready():
		return false, "JetStream not reached, or shutting down"
	case s.pace != nil && !s.pace.Warm():
		return false, "the waiting rooms are being read"
	case s.tokens != nil && !s.tokens.Ready():
		return false, "the shop's JWKS has not been read (--buyer-token-jwks)"
	}
	return true, ""
}

// APIAddr is the public API's address.
func (s *Server) APIAddr() string { return s.apiLn.Addr().String() }

// OpsAddr is the ops listener's address.
func (s *Server) OpsAddr() string { return s.opsLn.Addr().String() }

// NATSURL is where other processes reach the embedded server, if it listens.
func (s *Server) NATSURL() string { return s.broker.ClientURL() }

// APIHandler is the public API's handler, for benchmarks that skip the socket.
func (s *Server) APIHandler() fasthttp.RequestHandler { return s.api.Handler }

// Drainer is the drain running in this process, or nil.
func (s *Server) Drainer() *drain.Drainer { return s.drainer }

// Backend is the drain's backend, or nil.
func (s *Server) Backend() consumer.Backend { return s.backend }

// Rooms are the waiting rooms this gate follows, or nil (sluice drain).
func (s *Server) Rooms() *waitingroom.Rooms { return s.rooms }

// RoomStore is the waiting rooms' records, for tests and tools.
func (s *Server) RoomStore() *waitingroom.Store { return s.roomStore }

// Ledger is the gate's ledger, for tests and tools.
func (s *Server) Ledger() *ledger.Ledger { return s.ledger }

// Broker is the gate's JetStream connection and embedded server.
func (s *Server) Broker() *broker.Broker { return s.broker }

// Registry is the gate's metric registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Err reports a listener that failed while serving.
func (s *Server) Err() <-chan error { return s.errc }

// Shutdown stops the gate in order: readiness off, stop intake and let
// in-flight requests finish their publishes, stop the refresher, drain the
// NATS connection, shut the embedded server down, close the ops listener.
// An order answered 202 was stored before its answer, so none is lost.
// Calling it twice is safe.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		var errs []error
		if s.gate != nil {
			s.gate.SetDraining()
			if err := s.shutdownAPI(ctx); err != nil {
				errs = append(errs, fmt.Errorf("api shutdown: %w", err))
			}
		}
		if err := s.closeBackground(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := s.ops.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("ops shutdown: %w", err))
		}
		s.wg.Wait()
		s.shutErr = errors.Join(errs...)
		s.log.Info("sluice " + s.cfg.command() + " stopped")
	})
	return s.shutErr
}

// refreshed takes each refresh of the sale states: the gate follows them,
// and a sale whose orders gave slots back since (rejected, failed, as the
// decisions stream says) has its stream's limit raised, so that the slots
// are sold again. Every gate may do it: the limit is a function of the
// durable decisions, so two gates raise it to the same value.
func (s *Server) refreshed(read time.Time, states []ledger.SaleState, err error) {
	s.gate.UpdateSales(read, states, err)
	if err == nil {
		s.rooms.Sync(waitingroom.Lines(states))
	}
	for _, st := range states {
		if s.tracker.Released(st.Sale.Name) <= st.Released {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.ledger.RaiseLimit(ctx, st.Sale.Name); err != nil && time.Since(s.raiseWarned) > time.Minute {
			// Retried at every refresh, logged once a minute.
			s.raiseWarned = time.Now()
			s.log.Warn("could not give released slots back to the sale; retrying at every refresh", "sale", st.Sale.Name, "err", err)
		}
		cancel()
	}
}

// shutdownAPI stops the public listener: no new connection, requests
// being handled finish and are answered, and connections waiting for a
// next request (keep-alive clients, a load balancer's pool) are ended at
// once rather than when their read times out.
func (s *Server) shutdownAPI(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		err := s.api.ShutdownWithContext(ctx)
		// fasthttp closes only the listeners its Serve has registered: a
		// Serve goroutine that had not run yet (a Shutdown right after
		// Start) would register ours afterwards and accept for ever.
		// Closed here, its Accept fails at once and Serve returns.
		_ = s.apiLn.Close()
		done <- err
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			s.apiConns.expireReads()
		}
	}
}

// closeBackground stops what runs behind the listeners, in order: the
// drain (its batches under way finish and are acked), the refresher, the
// NATS connection and embedded server, the backend.
func (s *Server) closeBackground(ctx context.Context) error {
	var err error
	if s.drainer != nil {
		err = s.drainer.Stop(ctx)
	}
	for _, l := range []*periodic.Loop{s.indexer, s.prober, s.sampler, s.pacer} {
		if l != nil {
			l.Stop()
		}
	}
	if s.rooms != nil {
		s.rooms.Close()
	}
	if s.watcher != nil {
		s.watcher.Stop()
	}
	if s.tracker != nil {
		s.tracker.Stop()
	}
	if s.tokens != nil {
		s.tokens.Stop()
	}
	if s.broker != nil {
		s.broker.Close(ctx)
	}
	if s.backend != nil {
		if cerr := s.backend.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// Reload reads again what can change under a running gate without a
// restart: the public listener's TLS certificate. Open connections are
// not touched. Without TLS there is nothing to read and it returns nil.
// On error the gate goes on with what it had.
func (s *Server) Reload() error {
	if s.cert == nil {
		s.log.Info("reload: nothing to reload (no --tls-cert)")
		return nil
	}
	return s.cert.reload()
}

// Run starts a gate, serves until ctx is done or a listener fails, and
// shuts down with a fresh timeout. SIGHUP reloads (Reload) instead of
// ending the process, as systemd's ExecReload and kill -HUP expect.
func Run(ctx context.Context, cfg Config) error {
	// Caught before Start, so that a SIGHUP while starting neither kills
	// the process nor is lost.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			s.log.Info("shutting down", "cause", context.Cause(ctx))
			break wait
		case runErr = <-s.errc:
			s.log.Error("listener failed", "err", runErr)
			break wait
		case <-hup:
			_ = s.Reload() // logged; the old certificate stays on error
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, s.Shutdown(sctx))
}
