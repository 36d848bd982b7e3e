package serve

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"sluice/admission"
	"sluice/internal/broker"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/internal/streams"
	"sluice/internal/waitingroom"
)

// Start brings a gate (or, with DrainOnly, a drain) up, part by part in
// the order below, and returns once its listeners serve. Errors leave
// nothing running. Shutdown stops the parts in the reverse order.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg.defaults()
	s := &Server{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, errc: make(chan error, 2)}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	defer func() {
		if err != nil {
			s.closeBackground(context.Background())
			// Start failed before serving: no http.Server owns these yet.
			for _, ln := range []net.Listener{s.apiLn, s.opsLn} {
				if ln != nil {
					ln.Close()
				}
			}
		}
	}()
	for _, start := range []func(context.Context) error{
		s.check,          // every setting, before a port is bound or a file written
		s.startTokens,    // the shop's buyer tokens
		s.listen,         // the listeners: a busy port is said before anything starts
		s.startBroker,    // the embedded (or external) JetStream
		s.startDecisions, // the drain's decisions, followed (a gate)
		s.openLedger,     // the sales' streams, and the waiting rooms' records
		s.provision,      // the sales of the configuration
		s.openDrain,      // the backend and the drain into it, not started
		s.openRooms,      // the waiting rooms, read before the gate answers
		s.buildGate,      // the gate, built whole
		s.startLoops,     // the refresher, the sold-out index, the prober, the pacer
		s.startDrain,     // the drain
		s.serveOps,       // the console, metrics, health and the admin API
		s.serveAPI,       // the public API
	} {
		if err := start(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// check refuses every setting Check refuses, and buyer-token settings
// that need the tokens themselves.
func (s *Server) check(context.Context) error { return s.cfg.Check() }

func (s *Server) startTokens(ctx context.Context) (err error) {
	cfg := s.cfg
	if cfg.DrainOnly || !cfg.BuyerToken.set() {
		return nil
	}
	if s.tokens, err = buyerTokens(ctx, cfg.BuyerToken, s.log); err != nil {
		return settingErr(cfg.BuyerToken.setting(), err)
	}
	s.cfg.Gate.BuyerTokens, s.cfg.Gate.BuyerTokenCookie = s.tokens, cfg.BuyerToken.Cookie
	tokenMetrics(s.reg, s.tokens, cfg.BuyerToken.JWKSURL != "")
	return nil
}

func (s *Server) listen(context.Context) (err error) {
	cfg, cmd := s.cfg, s.cfg.command()
	if !cfg.DrainOnly {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("%s: listen %s: %w", cmd, cfg.Listen, err)
		}
		s.apiConns = track(ln)
		s.apiLn = s.apiConns
		if cfg.TLSCert != "" || cfg.TLSKey != "" {
			if s.cert, err = newCertificate(cfg.TLSCert, cfg.TLSKey, s.reg, s.log); err != nil {
				return settingErr("tls-cert", err)
			}
			s.apiLn = tls.NewListener(s.apiConns, s.cert.config())
		}
		if s.cfg.Gate.Renderer, err = cfg.renderer(); err != nil {
			return err
		}
	}
	if s.opsLn, err = net.Listen("tcp", cfg.OpsListen); err != nil {
		return fmt.Errorf("%s: ops listen %s: %w", cmd, cfg.OpsListen, err)
	}
	return nil
}

func (s *Server) startBroker(ctx context.Context) (err error) {
	cfg := s.cfg
	if cfg.NATSURL != "" {
		s.broker, err = broker.Connect(ctx, cfg.NATSURL, s.log)
	} else {
		bc := cfg.brokerConfig()
		bc.Logger = s.log
		s.broker, err = broker.Start(ctx, bc)
	}
	if err != nil {
		return err
	}
	if s.js, err = jetstream.New(s.broker.Conn); err != nil {
		return fmt.Errorf("%s: jetstream: %w", cfg.command(), err)
	}
	// A clustered JetStream answers only once it has elected a metadata
	// leader; everything after this provisions streams.
	if _, err := retry(ctx, func(ctx context.Context) (*jetstream.AccountInfo, error) { return s.js.AccountInfo(ctx) }); err != nil {
		return fmt.Errorf("%s: JetStream not ready: %w", cfg.command(), err)
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(cfg.role()))
	return nil
}

// startDecisions follows the decisions stream, replayed before the gate
// answers: an order's status, the released slots a sale sells again.
func (s *Server) startDecisions(ctx context.Context) (err error) {
	if s.cfg.DrainOnly {
		return nil
	}
	if _, err := retry(ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, orderstatus.Provision(ctx, s.js, s.cfg.Replicas)
	}); err != nil {
		return err
	}
	// An attempt includes replaying the decisions recorded so far.
	s.tracker, err = retryEvery(ctx, 30*time.Second, func(ctx context.Context) (*orderstatus.Tracker, error) {
		return orderstatus.StartTracker(ctx, s.js, s.log)
	})
	return err
}

func (s *Server) openLedger(context.Context) error {
	s.roomStore = waitingroom.NewStore(s.js, streams.Options{Replicas: s.cfg.Replicas})
	opts := ledger.Options{Replicas: s.cfg.Replicas, Lines: s.roomStore}
	if s.tracker != nil {
		opts.Released, opts.ReleasedVariant = s.tracker.Released, s.tracker.VariantReleased
	}
	s.ledger = ledger.New(s.js, opts)
	return nil
}

// openRooms reads the waiting rooms before the gate serves, as the
// decisions are: its first answers know the lines.
func (s *Server) openRooms(ctx context.Context) error {
	if s.cfg.DrainOnly {
		return nil
	}
	s.rooms = waitingroom.NewRooms(s.roomStore, s.log)
	if states, err := retry(ctx, s.ledger.States); err == nil {
		s.rooms.Open(ctx, waitingroom.Lines(states))
	}
	return nil
}

func (s *Server) buildGate(context.Context) (err error) {
	if s.cfg.DrainOnly {
		return nil
	}
	d := admission.Deps{Ledger: s.ledger, Metrics: admission.NewMetrics(s.reg), Status: s.tracker,
		Confirmed: s.tracker, Rooms: s.rooms, RoomStore: s.roomStore}
	if s.drainer != nil {
		d.Canceller = s.drainer.Cancel
	}
	if s.gate, err = admission.New(s.cfg.Gate, d); err != nil {
		return fmt.Errorf("%s: %w", s.cfg.command(), err)
	}
	s.pace = waitingroom.NewPacer(waitingroom.PacerConfig{Rooms: s.rooms, Store: s.roomStore, Stock: s.ledger,
		Sales: s.gate, Metrics: waitingroom.NewMetrics(s.reg), PublishTimeout: s.cfg.Gate.PublishTimeout, Logger: s.log})
	return nil
}

// startLoops starts what a gate does in the background: it follows the
// sales, keeps sold-out sales' orders in memory, probes a store that
// refuses writes, and paces the waiting rooms.
func (s *Server) startLoops(ctx context.Context) error {
	if s.cfg.DrainOnly {
		return nil
	}
	s.watcher = s.ledger.Watch(context.WithoutCancel(ctx), s.cfg.Refresh, s.refreshed)
	if _, err := retry(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, s.ledger.EnsureProbe(ctx) }); err != nil {
		return err
	}
	s.indexer = every(s.cfg.Refresh, s.indexSoldOut)
	s.prober = every(500*time.Millisecond, s.probeStore)
	// A first pace before the ops listener serves: the rooms' gauges
	// and counters are set, and the gate ready, from its first answer.
	s.pace.Pace(ctx)
	s.pacer = every(s.cfg.Refresh, s.pace.Pace)
	return nil
}

func (s *Server) serveOps(ctx context.Context) error {
	s.console = newConsole(s)
	s.console.sample(ctx)
	s.sampler = every(time.Second, s.console.sample)
	s.ops = &http.Server{
		Handler:           s.opsHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.serve(s.ops, s.opsLn)
	if s.cfg.DrainOnly {
		s.log.Info("sluice drain up", "ops", s.OpsAddr(), "backend", s.cfg.Backend)
	}
	return nil
}

func (s *Server) serveAPI(context.Context) error {
	if s.cfg.DrainOnly {
		return nil
	}
	cfg := s.cfg
	s.api = newAPIServer(s.gate, s.cfg, s.log)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.api.Serve(s.apiLn); err != nil {
			s.errc <- err
		}
	}()
	s.log.Info("sluice gate up", "api", s.APIAddr(), "tls", s.cert != nil, "ops", s.OpsAddr(), "nats_server", server.VERSION,
		"nats", s.broker.ClientURL(), "external_nats", cfg.NATSURL != "", "sync", cfg.Sync,
		"drain", !cfg.NoDrain, "backend", s.cfg.Backend)
	if cfg.AdminToken == "" {
		s.log.Info("admin API disabled: set --admin-token to enable it")
	}
	return nil
}
