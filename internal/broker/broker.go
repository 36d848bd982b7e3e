// Package broker runs the embedded NATS JetStream server, or connects to an
// external one, and hands out the client connection sluice uses.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Sync says when JetStream fsyncs its store.
type Sync string

const (
	// SyncInterval fsyncs every SyncEvery (JetStream's default is two
	// minutes): a PubAck means the order is in the OS page cache. It
	// survives a crash of the process, not a power loss of the machine.
	SyncInterval Sync = "interval"
	// SyncAlways fsyncs each write before the PubAck: it survives power
	// loss, at the price of one fsync per admitted order.
	SyncAlways Sync = "always"
)

// Config describes the embedded server. The zero value, with StoreDir set,
// is a standalone server listening on no TCP port.
type Config struct {
	StoreDir string
	// Listen, "host:port", lets other processes (gates, the nats CLI)
	// connect; empty means in-process connections only.
	Listen string
	// ServerName names this server in a cluster; empty picks one.
	ServerName string
	// Cluster: ClusterListen "host:port" for routes from other gates,
	// Routes "nats://host:port" of the peers, ClusterName shared by all.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// ClusterUser and ClusterPassword, set together, are the credentials
	// every route must present (nats-server's cluster authorization);
	// this server presents them to its peers, whose route URLs need not
	// carry them.
	ClusterUser, ClusterPassword string
	// ClusterTLSCert, ClusterTLSKey and ClusterTLSCA, set together, make
	// routes TLS with verification both ways: each peer's certificate
	// must be signed by the CA, as nats-server requires for routes.
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
	Sync                                        Sync
	SyncEvery                                   time.Duration
	// MaxStore bounds JetStream's file store in bytes; zero means
	// JetStream's default (most of the free disk).
	MaxStore int64
	Logger   *slog.Logger
	Debug    bool
}

// Broker is a connection to JetStream and, when embedded, its server.
type Broker struct {
	Conn *nats.Conn
	log  *slog.Logger
	// srv is the embedded server (nil when external); Restart swaps it.
	srv  atomic.Pointer[server.Server]
	opts *server.Options // the embedded server's, for Restart
	cfg  Config
}

// Server is the embedded server, nil when the broker is external. After a
// Restart it is the new one.
func (b *Broker) Server() *server.Server { return b.srv.Load() }

// inProcess hands the client a connection to whichever embedded server
// runs now: after a Restart, the client reconnects to the new one.
type inProcess struct{ b *Broker }

func (p inProcess) InProcessConn() (net.Conn, error) {
	ns := p.b.Server()
	if ns == nil {
		return nil, errors.New("broker: no embedded server")
	}
	return ns.InProcessConn()
}

// connOptions: no reconnect buffer, so a publish while disconnected fails
// at once (an answer of 503) instead of waiting in a buffer and perhaps
// being stored after the client was told it failed.
func connOptions(name string, log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.ReconnectBufSize(-1),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
}

// Connect joins an external NATS server or cluster at url.
func Connect(ctx context.Context, url string, log *slog.Logger) (*Broker, error) {
	opts := append(connOptions("sluice", log), nats.RetryOnFailedConnect(false))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connect %s: %w", url, err)
	}
	return &Broker{Conn: nc, log: log}, nil
}

// Check reports what Start would refuse in cfg without starting
// anything: addresses that do not parse, route credentials or TLS files
// given in part, route TLS files that do not load (it reads them), a
// cluster without a server name. It opens no port and writes nothing.
func (cfg Config) Check() error {
	_, err := cfg.options()
	return err
}

// options are the embedded server's options for cfg.
func (cfg Config) options() (*server.Options, error) {
	opts := &server.Options{
		ServerName:            cfg.ServerName,
		JetStream:             true,
		StoreDir:              cfg.StoreDir,
		JetStreamMaxStore:     cfg.MaxStore,
		NoSigs:                true,
		DontListen:            cfg.Listen == "",
		SyncAlways:            cfg.Sync == SyncAlways,
		SyncInterval:          cfg.SyncEvery,
		Debug:                 cfg.Debug,
		MaxPayload:            64 * 1024,
		DisableShortFirstPing: true,
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("broker: nats listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.ClusterListen != "" {
		if cfg.Listen == "" {
			// nats-server starts routing only once its client listener is
			// up (Server.Start hands StartRouting the accept loop's ready
			// channel), so a clustered server listens for clients too: on
			// a free loopback port.
			opts.DontListen = false
			opts.Host, opts.Port = "127.0.0.1", -1
		}
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("broker: cluster listen: %w", err)
		}
		opts.Cluster.Name = cfg.ClusterName
		if opts.Cluster.Name == "" {
			opts.Cluster.Name = "sluice"
		}
		opts.Cluster.Host, opts.Cluster.Port = host, port
		if err := clusterSecurity(cfg, opts); err != nil {
			return nil, err
		}
		if opts.ServerName == "" {
			return nil, ErrServerName
		}
	}
	return opts, nil
}

// Start runs an embedded JetStream server and connects to it in process.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	b := &Broker{log: log, opts: opts, cfg: cfg}
	wait := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	ns, err := b.startServer(wait)
	if err != nil {
		return nil, err
	}
	// A later Restart listens where this one does, even on a port picked
	// by the system.
	if addr, ok := ns.Addr().(*net.TCPAddr); ok && !opts.DontListen {
		opts.Port = addr.Port
	}
	nc, err := nats.Connect("", append(connOptions("sluice", log), nats.InProcessServer(inProcess{b}))...)
	if err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("broker: connect in process: %w", err)
	}
	b.Conn = nc
	return b, nil
}

// startServer starts an embedded server with b.opts and makes it b's.
func (b *Broker) startServer(wait time.Duration) (*server.Server, error) {
	ns, err := server.NewServer(b.opts.Clone())
	if err != nil {
		return nil, fmt.Errorf("broker: new server: %w", err)
	}
	ns.SetLoggerV2(&natsLogger{log: b.log.With("component", "nats")}, b.cfg.Debug, false, false)
	ns.Start()
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("broker: embedded NATS server not ready")
	}
	b.srv.Store(ns)
	return ns, nil
}

// ClientURL is the URL other processes connect to, empty when the embedded
// server listens on no port or the broker is external.
func (b *Broker) ClientURL() string {
	ns := b.Server()
	if ns == nil {
		return ""
	}
	if addr := ns.Addr(); addr != nil {
		return "nats://" + addr.String()
	}
	return ""
}

// Close drains the connection (pending publishes are flushed and their
// acks awaited) and then shuts the embedded server down, waiting for it.
// It is safe to call more than once.
func (b *Broker) Close(ctx context.Context) {
	if !b.Conn.IsClosed() {
		done := make(chan struct{})
		b.Conn.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := b.Conn.Drain(); err != nil {
			b.Conn.Close()
		} else {
			select {
			case <-done:
			case <-ctx.Done():
				b.Conn.Close()
			}
		}
	}
	if ns := b.Server(); ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// clusterSecurity sets the routes, their credentials and their TLS.
func clusterSecurity(cfg Config, opts *server.Options) error {
	if (cfg.ClusterUser == "") != (cfg.ClusterPassword == "") {
		return ErrClusterAuth
	}
	opts.Cluster.Username, opts.Cluster.Password = cfg.ClusterUser, cfg.ClusterPassword
	opts.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
	if cfg.ClusterUser != "" {
		// A route URL without credentials gets this server's own, which
		// every peer requires: the password is given once, not in each
		// of --cluster-routes.
		for _, u := range opts.Routes {
			if u.User == nil {
				u.User = url.UserPassword(cfg.ClusterUser, cfg.ClusterPassword)
			}
		}
	}
	n := 0
	for _, f := range []string{cfg.ClusterTLSCert, cfg.ClusterTLSKey, cfg.ClusterTLSCA} {
		if f != "" {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case 3:
	default:
		return ErrClusterTLS
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: cfg.ClusterTLSCert, KeyFile: cfg.ClusterTLSKey, CaFile: cfg.ClusterTLSCA, Verify: true,
	})
	if err != nil {
		return fmt.Errorf("broker: cluster TLS: %w", err)
	}
	// A route is both a client and a server: as nats-server does for a
	// cluster's tls block, its peers are verified against the same CA in
	// both directions.
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	tc.RootCAs = tc.ClientCAs
	opts.Cluster.TLSConfig = tc
	opts.Cluster.TLSTimeout = 5
	return nil
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	if port == 0 {
		port = -1 // nats-server's "pick a free port"
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// natsLogger sends the embedded server's log through slog.
type natsLogger struct {
	log *slog.Logger
	// routeErrs counts route-connect errors, to log the first at info.
	routeErrs atomic.Int64
}

// Noticef logs at debug: nats-server's notices are its start banner
// (~20 lines on every start), its shutdown and its housekeeping, which
// the gate's own "sluice gate up" and shutdown lines already say.
// --log-level debug shows them.
func (l *natsLogger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Fatalf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...), "fatal", true) }
func (l *natsLogger) Errorf(f string, v ...any) {
	if f == routeConnErrFmt && len(v) == 2 {
		l.routeConnError(v[0], v[1])
		return
	}
	l.log.Error(fmt.Sprintf(f, v...))
}

// routeConnErrFmt is nats-server's message for a route it could not reach
// (server/route.go), reported at error level on the first attempt and
// then every ConnectErrorReports attempts (each attempt is a second).
const routeConnErrFmt = "Error trying to connect to route (attempt %v): %v"

// routeConnError: while the gates of a cluster start, each one fails to
// reach the peers not yet up, which is expected and not an error. The
// first such failure is logged once, at info; later first attempts
// (a peer restarting) at debug; a peer still unreachable is a warning
// once a minute of attempts (nats-server reports a lost route's every
// attempt, a never-reached one's every hour).
func (l *natsLogger) routeConnError(attempt, err any) {
	n, _ := attempt.(int)
	switch {
	case n >= 60 && n%60 == 0:
		l.log.Warn("cluster peer still unreachable", "attempts", n, "err", fmt.Sprint(err))
	case l.routeErrs.Add(1) == 1:
		l.log.Info("cluster peer not reachable yet; retrying every second while the peers start (logged once)", "err", fmt.Sprint(err))
	default:
		l.log.Debug("cluster peer not reachable yet", "attempt", attempt, "err", fmt.Sprint(err))
	}
}
func (l *natsLogger) Debugf(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Tracef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...), "trace", true) }

// ErrCannotRestart: Restart does nothing for an external or a clustered
// server.
var ErrCannotRestart = errors.New("broker: only a standalone embedded server can be restarted in process")

// Restart shuts the embedded server down and starts a new one on the same
// store and ports, in process: streams and consumers are read back from
// disk and the client reconnects to it on its own (in-flight requests
// fail meanwhile). It is what clears a stream's write error after its
// disk filled up: nats-server stops writing a stream whose file hit a
// write error until the stream's store is opened again. Only a standalone
// embedded server is restarted.
func (b *Broker) Restart(ctx context.Context) error {
	old := b.Server()
	if old == nil || b.cfg.ClusterListen != "" {
		return ErrCannotRestart
	}
	old.Shutdown()
	old.WaitForShutdown()
	wait := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	if _, err := b.startServer(wait); err != nil {
		return err
	}
	// The client reconnects on its own; wait for it, so that the caller
	// finds JetStream answering.
	for !b.Conn.IsConnected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: reconnect after restart: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// StoreDir is where the embedded server keeps JetStream's store, empty
// when external.
func (b *Broker) StoreDir() string {
	if b.Server() == nil {
		return ""
	}
	return filepath.Join(b.opts.StoreDir, server.JetStreamStoreDir)
}
