package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"sluice/admission"
	"sluice/internal/broker"
	"sluice/internal/gctune"
	"sluice/internal/ledger"
	"sluice/internal/serve"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGate(ctx, "serve", args, stdout, stderr)
}

func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGate(ctx, "drain", args, stdout, stderr)
}

// runGate is sluice serve or sluice drain: with --check it stops once
// the configuration is known good, having started nothing.
func runGate(ctx context.Context, role string, args []string, stdout, stderr io.Writer) error {
	cfg, opt, err := parseCommand(role, args, stdout, stderr)
	if err != nil {
		return err
	}
	if opt.check {
		fmt.Fprintf(stdout, "sluice: configuration OK (%s)\n", summary(cfg))
		return nil
	}
	defer setGC(cfg)()
	return serve.Run(ctx, cfg)
}

// summary is what a checked configuration would run, in one line.
func summary(cfg serve.Config) string {
	var parts []string
	add := func(f string, a ...any) { parts = append(parts, fmt.Sprintf(f, a...)) }
	if cfg.DrainOnly {
		add("drain of %s", cfg.NATSURL)
	} else {
		role := "gate+drain"
		if cfg.NoDrain {
			role = "gate"
		}
		scheme := "http"
		if cfg.TLSCert != "" {
			scheme = "https"
		}
		add("%s, public %s://%s", role, scheme, cfg.Listen)
	}
	add("ops %s", cfg.OpsListen)
	switch {
	case cfg.DrainOnly:
	case cfg.NATSURL != "":
		add("JetStream at %s", cfg.NATSURL)
	case cfg.ClusterListen != "":
		add("JetStream %s in %s, cluster %s on %s, %d routes", cfg.ServerName, cfg.DataDir, cfg.ClusterName, cfg.ClusterListen, len(cfg.ClusterRoutes))
	default:
		add("JetStream in %s", cfg.DataDir)
	}
	switch {
	case cfg.DrainOnly:
	case len(cfg.Sales) == 0 && !cfg.NoDemo:
		add("no sale (a first start makes demo, stock 1000)")
	default:
		add("%s", plural(len(cfg.Sales), "sale", "sales"))
	}
	if !cfg.NoDrain {
		b := cfg.Backend
		switch {
		case b == "":
			b = filepath.Join(cfg.DataDir, "orders.db")
		case strings.Contains(b, "://"):
			b = redactURL(b)
		}
		add("backend %s", b)
	}
	if cfg.AdminToken != "" {
		add("admin API on")
	}
	return strings.Join(parts, ", ")
}

// redactURL drops a URL's password and query (a DSN's secrets).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(a URL that does not parse)"
	}
	u.RawQuery = ""
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// setGC applies --gc-percent unless GOGC says otherwise. A gate's live heap
// is small, so with Go's default it collects many times a second under a
// burst, and each cycle carries a fixed cost from the embedded JetStream
// server: measured, that made the sold-out answer ~15% dearer than a bare
// handler's. Collecting at 400% of the live heap removes that cost. A big
// live heap (a waiting room of a million tickets) needs no such head room
// and would be let grow fivefold: with --gc-headroom the percent follows
// the live heap after each collection (internal/gctune), so the heap grows
// by at most the live heap or the head room, whichever is larger.
//
// --memory-limit sets the runtime's soft memory limit: the collector runs
// as often as it must to stay under it, whatever the GC percent, so the
// head room cannot take the process past it. The returned func stops the
// tuning.
func setGC(cfg serve.Config) (stop func()) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
		cfg.Logger.Debug("memory limit set", "bytes", cfg.MemoryLimit)
	}
	if _, set := os.LookupEnv("GOGC"); set || cfg.GCPercent == 0 {
		return func() {}
	}
	if cfg.GCHeadroom > 0 && cfg.GCPercent > 100 {
		t := gctune.Start(cfg.GCPercent, cfg.GCHeadroom)
		cfg.Logger.Debug("GC percent tuned", "max", cfg.GCPercent, "headroom_bytes", cfg.GCHeadroom)
		return t.Stop
	}
	old := debug.SetGCPercent(cfg.GCPercent)
	cfg.Logger.Debug("GC percent set", "from", old, "to", cfg.GCPercent)
	return func() {}
}

// bytesFlag is a size in bytes, given as a number with an optional
// KiB, MiB, GiB, KB, MB or GB suffix.
type bytesFlag struct{ n *int64 }

func (b bytesFlag) String() string {
	if b.n == nil || *b.n == 0 {
		return "0"
	}
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if *b.n%u.mult == 0 {
			return strconv.FormatInt(*b.n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(*b.n, 10)
}

func (b bytesFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a size like 2GiB or 1500MB")
	}
	*b.n = n * mult
	return nil
}

func parseServe(args []string, stderr io.Writer) (serve.Config, error) {
	return parseConfig("serve", args, io.Discard, stderr)
}

// parseConfig parses and checks the flags of `sluice serve` or `sluice
// drain` (parseCommand).
func parseConfig(role string, args []string, stdout, stderr io.Writer) (serve.Config, error) {
	cfg, _, err := parseCommand(role, args, stdout, stderr)
	return cfg, err
}

const serveUsage = `Usage: sluice serve [flags]

Runs a gate: the public API (--listen), the ops listener with the console,
metrics, health and the admin API (--ops-listen), an embedded JetStream
server with its store in --data-dir (or --nats-url for an existing one),
and the drain that moves admitted orders into --backend (SQLite in
<data-dir>/orders.db by default) unless --no-drain. The first start with
no sale creates "demo" with a stock of 1000 (--no-demo: none).

Examples:
  sluice serve
  sluice serve --sale s1=5000 --admin-token-file /etc/sluice/token
  sluice serve --config sluice.yaml --backend postgres://sluice@db/shop
  sluice serve --nats-listen 127.0.0.1:4222 --no-drain   # a gate; a sluice drain drains
  sluice serve --config sluice.yaml --check   # would it start? (nothing is started)

Every flag is also SLUICE_<FLAG> in the environment (SLUICE_OPS_LISTEN) and
a key of the --config file (ops_listen:); a flag beats the environment,
which beats the file. The settings are checked once all are known; an
error names the setting as it was given (--flag, SLUICE_FLAG, or the
file's key). --check stops there: exit 0 and a one-line summary if the
gate would start, else the errors, having bound, written and started
nothing. Guide: docs/configuration.md.

Flags:
`

const drainUsage = `Usage: sluice drain --nats-url URL [flags]

Runs only the drain: it follows the sales of the gates sharing the NATS
server at --nats-url and moves their admitted orders into --backend,
beside gates run with --no-drain, so that gates and drains scale apart.
Run one drain per backend (several against one PostgreSQL share the work).

Examples:
  sluice drain --nats-url nats://127.0.0.1:4222
  sluice drain --nats-url nats://127.0.0.1:4222 --backend postgres://sluice@db/shop
  sluice drain --nats-url nats://127.0.0.1:4222 --backend https://shop.example/internal/orders --backend-rate 200
  sluice drain --nats-url nats://127.0.0.1:4222 --backend postgres://sluice@db/shop --check

Every flag is also SLUICE_<FLAG> in the environment and a key of the
--config file, but for --ops-listen: SLUICE_DRAIN_OPS_LISTEN and
drain_ops_listen, so that a drain sharing a gate's environment or file
does not take the gate's port. --check checks the settings and exits,
starting nothing. Guide: docs/orders-and-the-drain.md.

Flags:
`

// commandOptions are what a command line asks beyond the configuration.
type commandOptions struct {
	check bool // --check: check the configuration, start nothing
}

// parseCommand parses the flags of `sluice serve` or `sluice drain` (drain
// takes the NATS, backend, drain, ops and log flags), layers the
// environment and the config file under them, and checks the result
// (serve.Config.Check) once every setting is known: a setting that needs
// another is judged with both. Each error names the setting at fault as
// it was given: --flag, SLUICE_FLAG or the config file's key.
// commandFlags are the flags of sluice serve and sluice drain and the
// values they set.
type commandFlags struct {
	fs, gfs                             *flag.FlagSet
	cfg                                 serve.Config
	opt                                 commandOptions
	configPath                          string
	sales, proxies, routes, corsOrigins listFlag
	sync, logFormat, logLevel           string
	adminTokenFile                      string
}

// newCommandFlags defines the flags of role on a new flag set writing to
// stderr.
func newCommandFlags(role string, stderr io.Writer) *commandFlags {
	f := &commandFlags{fs: flag.NewFlagSet("sluice "+role, flag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(stderr)
	fs.Usage = func() {
		if role == "drain" {
			fmt.Fprint(fs.Output(), drainUsage)
		} else {
			fmt.Fprint(fs.Output(), serveUsage)
		}
		fs.PrintDefaults()
	}
	// The gate's own flags. sluice drain defines them on a flag set it
	// never parses, so that a config file or environment shared with the
	// gates is accepted and their keys ignored.
	f.gfs = fs
	if role != "serve" {
		f.gfs = flag.NewFlagSet("sluice serve", flag.ContinueOnError)
	}
	gfs := f.gfs
	fs.StringVar(&f.configPath, "config", "", "YAML config `file` (flags and SLUICE_* env beat it)")
	fs.BoolVar(&f.opt.check, "check", false, "check the flags, environment and config file (and the files they name) and exit: 0 and a one-line summary if "+role+" would start with them, else the error; nothing is started, bound or written")
	gfs.StringVar(&f.cfg.Listen, "listen", ":8080", "public API `address`")
	gfs.StringVar(&f.cfg.TLSCert, "tls-cert", "", "PEM certificate `file` (the leaf, then its chain) for HTTPS on the public API, with --tls-key; read again on SIGHUP")
	gfs.StringVar(&f.cfg.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	opsDefault, opsHelp := "127.0.0.1:9464", "metrics, health, pprof and admin `address`"
	if role == "drain" {
		opsDefault, opsHelp = "127.0.0.1:9465", "metrics, health and pprof `address` (9465: beside a gate's 9464)"
	}
	fs.StringVar(&f.cfg.OpsListen, "ops-listen", opsDefault, opsHelp)
	dataHelp := "where the embedded JetStream keeps its store (and the default SQLite backend, orders.db)"
	if role == "drain" {
		dataHelp = "where the default SQLite backend lives (<data-dir>/orders.db)"
	}
	fs.StringVar(&f.cfg.DataDir, "data-dir", "./sluice-data", dataHelp)
	gfs.Var(&f.sales, "sale", "provision a sale `NAME=STOCK` (repeatable); richer settings (window, rates, queue bound, waiting_room) in the config file or the admin API")
	gfs.BoolVar(&f.cfg.NoDemo, "no-demo", false, "do not create the demo sale when no sale exists")
	gfs.StringVar(&f.sync, "sync", "interval", "JetStream fsync: \"always\" (each order before its 202, survives power loss) or \"interval\" (see --sync-interval)")
	gfs.DurationVar(&f.cfg.SyncEvery, "sync-interval", 0, "fsync period with --sync interval (0: JetStream's default, 2m)")
	natsHelp := "connect to this NATS server or cluster instead of embedding one"
	if role == "drain" {
		natsHelp = "the gates' NATS server or cluster (required)"
	}
	fs.StringVar(&f.cfg.NATSURL, "nats-url", "", natsHelp)
	gfs.StringVar(&f.cfg.NATSListen, "nats-listen", "", "let the embedded NATS server accept clients on this `address`")
	gfs.StringVar(&f.cfg.ServerName, "server-name", "", "name of the embedded NATS server (required in a cluster)")
	gfs.StringVar(&f.cfg.ClusterName, "cluster-name", "sluice", "NATS cluster name")
	gfs.StringVar(&f.cfg.ClusterListen, "cluster-listen", "", "route `address` for a cluster of embedded servers")
	gfs.Var(&f.routes, "cluster-routes", "peer routes, nats://host:port (repeatable or comma-separated)")
	gfs.StringVar(&f.cfg.ClusterUser, "cluster-user", "", "user every route must present, with --cluster-password (the same on every gate)")
	gfs.StringVar(&f.cfg.ClusterPassword, "cluster-password", "", "password of --cluster-user; prefer SLUICE_CLUSTER_PASSWORD or the config file to the command line, which ps shows")
	gfs.StringVar(&f.cfg.ClusterTLSCert, "cluster-tls-cert", "", "PEM certificate `file` this gate presents on routes (TLS both ways, with --cluster-tls-key and --cluster-tls-ca)")
	gfs.StringVar(&f.cfg.ClusterTLSKey, "cluster-tls-key", "", "PEM private key `file` of --cluster-tls-cert")
	gfs.StringVar(&f.cfg.ClusterTLSCA, "cluster-tls-ca", "", "PEM CA `file` that signs every gate's route certificate; peers are verified against it")
	fs.IntVar(&f.cfg.Replicas, "replicas", 1, "replicas of each sale stream (3 in a cluster)")
	gfs.Int64Var(&f.cfg.MaxStore, "max-store", 0, "bound on JetStream's file store in bytes (0: most of the disk)")
	f.identityFlags()
	f.limitFlags()
	f.drainFlags()
	return f
}

// identityFlags are the admin token, the pages and who the buyer is.
func (f *commandFlags) identityFlags() {
	gfs := f.gfs
	gfs.StringVar(&f.cfg.AdminToken, "admin-token", "", "bearer token of the admin API (empty: admin API off); prefer --admin-token-file to the command line, which ps shows")
	gfs.StringVar(&f.adminTokenFile, "admin-token-file", "", "read the admin API's bearer token from this `file` (a trailing newline is dropped), instead of --admin-token")
	gfs.StringVar(&f.cfg.SoldOutPage, "sold-out-page", "", "HTML file shown to browsers when a sale is sold out, as it is")
	gfs.StringVar(&f.cfg.Pages, "pages", "", "`directory` of your own page templates (waiting.html, join.html, problem.html, sold-out.html…); start from sluice pages export DIR")
	gfs.StringVar(&f.cfg.Gate.BuyerHeader, "buyer-header", "", "take the buyer id from this header, set by an authenticating proxy in --trusted-proxies (other peers are refused)")
	gfs.StringVar(&f.cfg.BuyerToken.JWKSURL, "buyer-token-jwks", "", "take the buyer from the shop's signed token (its sub), verified with the keys (RS256, ES256, EdDSA) of the shop's JWKS at this `URL`; every join and order then needs one")
	gfs.StringVar(&f.cfg.BuyerToken.SecretFile, "buyer-token-secret-file", "", "as --buyer-token-jwks, with HS256 tokens signed with the secret (32 bytes or more) in this `file`")
	gfs.StringVar(&f.cfg.BuyerToken.Cookie, "buyer-token-cookie", "", "also take the buyer token from this cookie (the waiting page's browser sends it)")
	gfs.StringVar(&f.cfg.BuyerToken.Issuer, "buyer-token-issuer", "", "the buyer token's iss must be this")
	gfs.StringVar(&f.cfg.BuyerToken.Audience, "buyer-token-audience", "", "the buyer token's aud must hold this")
	gfs.Var(&f.corsOrigins, "cors-origin", "let pages from this exact `origin` (https://shop.example) call the public API from a browser (repeatable; config cors_origins)")
	gfs.BoolVar(&f.cfg.Gate.CORS.Credentials, "cors-credentials", false, "with --cors-origin: let those pages send cookies (fetch credentials: \"include\"), for a front door that reads the buyer from one")
}

// limitFlags are the gate's limits: rates, keys, waiters, connections.
func (f *commandFlags) limitFlags() {
	gfs := f.gfs
	gfs.Var(&f.proxies, "trusted-proxies", "proxies (IPs or CIDRs) whose X-Forwarded-For and buyer header are believed")
	gfs.Float64Var(&f.cfg.Gate.IPRate, "ip-rate", 0, "orders/s per client address (0: off)")
	gfs.IntVar(&f.cfg.Gate.IPBurst, "ip-burst", 5, "burst per client address")
	gfs.Float64Var(&f.cfg.Gate.BuyerRate, "buyer-rate", 0, "orders/s per buyer (0: off)")
	gfs.IntVar(&f.cfg.Gate.BuyerBurst, "buyer-burst", 3, "burst per buyer")
	gfs.IntVar(&f.cfg.Gate.LimiterKeys, "limiter-keys", 100_000, "most keys each keyed limiter holds")
	gfs.DurationVar(&f.cfg.Gate.PublishTimeout, "publish-timeout", 5*time.Second, "longest wait for JetStream to store an order")
	gfs.IntVar(&f.cfg.Gate.MaxWaiters, "max-waiters", admission.DefaultMaxWaiters, "most requests held at once (Prefer: wait=N): orders waiting for their decision and ticket polls waiting for a change of state; past it they are answered at once, an order 202 (negative: never hold)")
	gfs.Int64Var(&f.cfg.Gate.LineMaxTickets, "line-max-tickets", admission.DefaultLineMaxTickets, "most tickets this gate holds in memory over every waiting room's line (about 130 bytes each); past it joins are answered 503")
	gfs.IntVar(&f.cfg.MaxConns, "max-conns", 262_144, "most open connections on the public listener")
	gfs.IntVar(&f.cfg.MaxConnsPerIP, "max-conns-per-ip", 0, "most open public connections per client address (0: no bound; keep it 0 behind a proxy)")
	gfs.BoolVar(&f.cfg.ReduceMemory, "reduce-memory", false, "release a public connection's buffers between requests: about half the memory per idle connection, one more read per request")
}

// drainFlags are the drain's, the GC's and the log's.
func (f *commandFlags) drainFlags() {
	fs, gfs := f.fs, f.gfs
	fs.DurationVar(&f.cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "longest graceful shutdown")
	gfs.BoolVar(&f.cfg.NoDrain, "no-drain", false, "do not drain orders in this process (a sluice drain does)")
	fs.StringVar(&f.cfg.Backend, "backend", "", "where orders drain to: a SQLite path, postgres://… or http(s)://… (default <data-dir>/orders.db); a sale keeps the orders drained before in the backend they went to, and the drain warns when it changes")
	fs.IntVar(&f.cfg.Drain.Workers, "workers", 4, "most backend calls at once")
	fs.IntVar(&f.cfg.Drain.Batch, "batch", 100, "most orders per backend call")
	fs.Float64Var(&f.cfg.Drain.BackendRate, "backend-rate", 0, "most orders per second sent to the backend by this process, over all sales (0: no cap); a sale's backend_rate applies too")
	fs.DurationVar(&f.cfg.Drain.MaxWait, "batch-wait", 50*time.Millisecond, "longest wait to fill a batch")
	fs.IntVar(&f.cfg.Drain.MaxDeliver, "max-deliver", 10, "attempts before an order is dead-lettered")
	fs.DurationVar(&f.cfg.Drain.BackendTimeout, "backend-timeout", 10*time.Second, "longest backend call")
	fs.DurationVar(&f.cfg.Drain.AckWait, "ack-wait", 5*time.Second, "redeliver an order a drain took and did not settle after this long (a crashed drain's orders); batches in the backend are kept alive every third of it")
	fs.IntVar(&f.cfg.GCPercent, "gc-percent", 400, "Go GC target percent while the live heap is small (0: the runtime's default; GOGC wins if set)")
	f.cfg.GCHeadroom = 256 << 20
	fs.Var(bytesFlag{&f.cfg.GCHeadroom}, "gc-headroom", "bound on the heap's growth between collections: as the live heap grows the GC percent falls (down to 100), so the heap grows by at most the larger of the live heap and this (0: a fixed --gc-percent)")
	fs.Var(bytesFlag{&f.cfg.MemoryLimit}, "memory-limit", "soft memory limit of the process, e.g. 2GiB: the GC collects as often as it must to stay under it (0: none; GOMEMLIMIT wins if set)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

func parseCommand(role string, args []string, stdout, stderr io.Writer) (serve.Config, commandOptions, error) {
	f := newCommandFlags(role, stderr)
	fs, gfs, opt := f.fs, f.gfs, &f.opt
	cfg := &f.cfg
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return *cfg, *opt, err
	}
	if fs.NArg() > 0 {
		return *cfg, *opt, fmt.Errorf("%s: unexpected arguments %q", role, fs.Args())
	}
	structured := map[string]any{"sales": nil, "cors_origins": nil}
	ignored := map[string]bool{"drain_ops_listen": true}
	lo := layerOptions{only: map[string]bool{"check": true, "config": true}}
	if role != "serve" {
		structured = map[string]any{}
		ignored = map[string]bool{"sales": true, "cors_origins": true, "ops_listen": true}
		gfs.VisitAll(func(f *flag.Flag) { ignored[strings.ReplaceAll(f.Name, "-", "_")] = true })
		// The drain's ops port is not the gate's: a gate and a drain
		// sharing an environment or a config file would otherwise both
		// take SLUICE_OPS_LISTEN, and the second to start fails to bind.
		lo.keys = map[string]string{"ops-listen": "drain_ops_listen"}
	}
	// --config is itself a setting: SLUICE_CONFIG names the file when the
	// command line does not (read before the file's keys are layered).
	if f.configPath == "" {
		f.configPath = os.Getenv("SLUICE_CONFIG")
	}
	from, err := layerWith(fs, f.configPath, structured, ignored, lo)
	if err != nil {
		return *cfg, *opt, err
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return *cfg, *opt, relabel(err, from)
	}
	cfg.Logger = log
	cfg.Sync = broker.Sync(f.sync)
	cfg.ClusterRoutes = f.routes
	if role == "serve" {
		if err := gateSettings(cfg, from, structured, f.sales, f.proxies, f.corsOrigins, f.adminTokenFile, f.configPath); err != nil {
			return *cfg, *opt, relabel(err, from)
		}
	}
	// --gc-headroom's default applies only where it can: above 100%.
	if _, set := from["gc-headroom"]; !set && cfg.GCPercent <= 100 {
		cfg.GCHeadroom = 0
	}
	if role == "drain" {
		cfg.DrainOnly = true
	}
	if err := cfg.Check(); err != nil {
		return *cfg, *opt, relabel(err, from)
	}
	return *cfg, *opt, nil
}

// gateSettings resolves what only a gate has: the admin token, the
// sales of the flags and the file, the CORS origins, the trusted proxies.
func gateSettings(cfg *serve.Config, from origins, structured map[string]any, sales, proxies, corsOrigins listFlag, tokenFile, configPath string) error {
	if tokenFile != "" {
		tok, tf := from["admin-token"], from["admin-token-file"]
		switch {
		case cfg.AdminToken == "":
		case tok.layer == tf.layer:
			return &serve.SettingError{Setting: "admin-token-file", Err: fmt.Errorf("and %s both give the admin token: give one", tok.label)}
		case tok.layer < tf.layer:
			tokenFile = "" // the token given higher up wins, as any setting does
		}
	}
	if tokenFile != "" {
		t, err := readTokenFile(tokenFile)
		if err != nil {
			return &labelled{label: from.label("admin-token-file"), err: err}
		}
		cfg.AdminToken = t
	}
	// cors_origins, the plural, is the config file's spelling of the
	// repeated flag; the flag or SLUICE_CORS_ORIGIN beat it.
	if v := structured["cors_origins"]; v != nil && len(corsOrigins) == 0 {
		if err := corsOrigins.Set(yamlScalar(v)); err != nil {
			return fmt.Errorf("cors_origins in %s: %w", configPath, err)
		}
		from["cors-origin"] = origin{fromFile, "cors_origins in " + configPath}
	}
	cfg.Gate.CORS.Origins = corsOrigins
	var err error
	if cfg.Gate.TrustedProxies, err = admission.ParseTrustedProxies(proxies); err != nil {
		return &labelled{label: from.label("trusted-proxies"), err: err}
	}
	if v := structured["sales"]; v != nil {
		var fileSales []ledger.Sale
		if err := redecode(v, &fileSales); err != nil {
			return fmt.Errorf("sales in %s: %w", configPath, err)
		}
		for _, s := range fileSales {
			cfg.Sales = append(cfg.Sales, serve.SaleSpec{Sale: s})
		}
		if _, set := from["sale"]; !set {
			from["sale"] = origin{fromFile, "sales in " + configPath}
		}
	}
	for _, s := range sales {
		spec, err := parseSaleFlag(s)
		if err != nil {
			return &labelled{label: from.label("sale"), err: err}
		}
		cfg.Sales = mergeSale(cfg.Sales, spec)
	}
	return nil
}

// readTokenFile reads a bearer token from a file, less a trailing
// newline; an empty one is refused, as it would turn the admin API off
// (or send no token) without a word.
func readTokenFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimRight(string(raw), "\r\n")
	if strings.TrimSpace(t) == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return t, nil
}

// labelled is an error about a setting, named as it was given.
type labelled struct {
	label string
	err   error
}

func (l *labelled) Error() string { return l.label + ": " + l.err.Error() }
func (l *labelled) Unwrap() error { return l.err }

// relabel names each setting of err (serve.SettingError) as it was
// given: SLUICE_BUYER_HEADER or buyer_header in the file rather than
// --buyer-header, so that the operator looks in the right place.
func relabel(err error, from origins) error {
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range multi.Unwrap() {
			out = append(out, relabel(e, from))
		}
		return errors.Join(out...)
	}
	var se *serve.SettingError
	if errors.As(err, &se) {
		return &labelled{label: from.label(se.Setting), err: se.Err}
	}
	return err
}

func parseSaleFlag(v string) (serve.SaleSpec, error) {
	name, stock, ok := strings.Cut(v, "=")
	n, err := strconv.ParseInt(stock, 10, 64)
	if !ok || err != nil || n < 1 {
		return serve.SaleSpec{}, fmt.Errorf("%q: want NAME=STOCK with STOCK >= 1", v)
	}
	return serve.SaleSpec{Sale: ledger.Sale{Name: name, Stock: n}, StockOnly: true}, nil
}

// mergeSale applies a --sale to the file's sales: the flag's stock wins.
func mergeSale(sales []serve.SaleSpec, spec serve.SaleSpec) []serve.SaleSpec {
	for i := range sales {
		if sales[i].Name == spec.Name {
			sales[i].Stock = spec.Stock
			return sales
		}
	}
	return append(sales, spec)
}
