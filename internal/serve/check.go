package serve

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"sluice/admission"
	"sluice/internal/broker"
	"sluice/internal/buyertoken"
	"sluice/overflow"
)

// SettingError is a setting the gate (or the drain) cannot run with.
// Setting is the flag's name without its dashes ("buyer-header"): the
// same setting is SLUICE_BUYER_HEADER in the environment and
// buyer_header in the config file, and whoever knows which of them gave
// the value may name that one instead (cmd/sluice does).
type SettingError struct {
	Setting string
	Err     error
}

func (e *SettingError) Error() string { return "--" + e.Setting + ": " + e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

// because is an error whose text is its own and which matches a
// sentinel too (errors.Is), so that a message says what to do once.
type because struct {
	msg string
	err error
}

func (b because) Error() string { return b.msg }
func (b because) Unwrap() error { return b.err }

func settingErr(setting string, err error) error {
	return &SettingError{Setting: setting, Err: err}
}

func settingf(setting, format string, a ...any) error {
	return &SettingError{Setting: setting, Err: fmt.Errorf(format, a...)}
}

// Check reports what Start would refuse that can be known without
// starting anything: every setting on its own and every setting that
// needs another, listen addresses, the TLS certificate and its key (read,
// and checked to match), the route TLS files, the page templates, the
// sold-out page, the buyer-token secret, the JWKS URL's form, the
// backend's form, the sales. It reads files but opens no port, creates
// no file or directory and makes no connection: a JWKS is not fetched,
// a database not dialled. Each error is a *SettingError naming the
// setting at fault. Start calls it first.
func (c Config) Check() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	c.defaults()
	add(checkAddr("ops-listen", c.OpsListen))
	add(c.checkNATS())
	add(c.checkDrain())
	if !c.DrainOnly {
		add(checkAddr("listen", c.Listen))
		add(c.checkTLS())
		add(c.checkIdentity())
		if _, err := c.renderer(); err != nil {
			add(err)
		}
		for _, s := range c.Sales {
			if err := s.Validate(); err != nil {
				add(settingErr("sale", err))
			}
		}
	}
	add(c.checkGC())
	return errors.Join(errs...)
}

// checkAddr refuses a listen address net.Listen would refuse for its
// form (a missing port, a port out of range), without listening.
func checkAddr(setting, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return settingf(setting, "%q: want host:port, like 127.0.0.1:9464 or :8080: %w", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return settingf(setting, "%q: port %q: %w", addr, port, err)
	}
	return nil
}

// checkNATS checks the embedded server's settings, or the external
// server's URL and that nothing asks the embedded server for anything.
func (c Config) checkNATS() error {
	var errs []error
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			u = strings.TrimSpace(u)
			if !strings.Contains(u, "://") {
				u = "nats://" + u // as nats.go reads a bare host:port
			}
			pu, err := url.Parse(u)
			if err != nil || pu.Host == "" {
				errs = append(errs, settingf("nats-url", "%q: want nats://host:port (comma-separated for a cluster)", u))
			}
		}
		for _, s := range []struct{ setting, v string }{
			{"nats-listen", c.NATSListen}, {"cluster-listen", c.ClusterListen},
		} {
			if s.v != "" {
				errs = append(errs, settingf(s.setting, "no embedded NATS server with --nats-url: drop one of them"))
			}
		}
	} else if c.DrainOnly {
		errs = append(errs, settingf("nats-url", "required: the drain reads the gates' JetStream (their --nats-listen or cluster)"))
	}
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		errs = append(errs, settingf("replicas", "%d: want 1 to 5", c.Replicas))
	case c.Replicas > 1 && c.NATSURL == "" && c.ClusterListen == "":
		errs = append(errs, settingf("replicas", "%d needs a cluster: --cluster-listen (embedded servers routed together) or --nats-url", c.Replicas))
	}
	if c.Sync != broker.SyncAlways && c.Sync != broker.SyncInterval {
		errs = append(errs, settingf("sync", "%q: want always or interval", c.Sync))
	}
	if c.SyncEvery < 0 {
		errs = append(errs, settingf("sync-interval", "%s: want 0 or more", c.SyncEvery))
	}
	if c.SyncEvery > 0 && c.Sync == broker.SyncAlways {
		errs = append(errs, settingf("sync-interval", "%s needs --sync interval: with --sync always each order is synced before its 202", c.SyncEvery))
	}
	if c.DrainOnly || c.NATSURL != "" {
		return errors.Join(errs...)
	}
	if c.NATSListen != "" {
		errs = append(errs, checkAddr("nats-listen", c.NATSListen))
	}
	if c.ClusterListen == "" {
		for _, s := range []struct{ setting, v string }{
			{"cluster-routes", strings.Join(c.ClusterRoutes, ",")},
			{"cluster-user", c.ClusterUser}, {"cluster-password", c.ClusterPassword},
			{"cluster-tls-cert", c.ClusterTLSCert}, {"cluster-tls-key", c.ClusterTLSKey}, {"cluster-tls-ca", c.ClusterTLSCA},
		} {
			if s.v != "" {
				errs = append(errs, settingf(s.setting, "needs --cluster-listen: without it this gate joins no cluster"))
			}
		}
		return errors.Join(errs...)
	}
	if err := checkAddr("cluster-listen", c.ClusterListen); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if c.ServerName == "" {
		errs = append(errs, settingErr("cluster-listen", because{"needs --server-name: each server of a cluster has a name of its own", broker.ErrServerName}))
	}
	for _, r := range c.ClusterRoutes {
		if u, err := url.Parse(r); err != nil || u.Host == "" {
			errs = append(errs, settingf("cluster-routes", "%q: want nats://host:port", r))
		}
	}
	switch {
	case c.ClusterUser != "" && c.ClusterPassword == "":
		errs = append(errs, settingErr("cluster-user", because{"needs --cluster-password (SLUICE_CLUSTER_PASSWORD)", broker.ErrClusterAuth}))
	case c.ClusterUser == "" && c.ClusterPassword != "":
		errs = append(errs, settingErr("cluster-password", because{"needs --cluster-user", broker.ErrClusterAuth}))
	}
	tlsFiles := []struct{ setting, v string }{
		{"cluster-tls-cert", c.ClusterTLSCert}, {"cluster-tls-key", c.ClusterTLSKey}, {"cluster-tls-ca", c.ClusterTLSCA},
	}
	var given, missing []string
	for _, f := range tlsFiles {
		if f.v != "" {
			given = append(given, f.setting)
		} else {
			missing = append(missing, "--"+f.setting)
		}
	}
	if len(given) > 0 && len(missing) > 0 {
		errs = append(errs, settingErr(given[0], because{"needs " + strings.Join(missing, " and ") + ": route TLS takes the certificate, its key and the CA together", broker.ErrClusterTLS}))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// What is left to check reads the route TLS files.
	if err := c.brokerConfig().Check(); err != nil {
		setting := "cluster-listen"
		if len(given) > 0 {
			setting = "cluster-tls-cert"
		}
		return settingErr(setting, err)
	}
	return nil
}

// brokerConfig is the embedded server's configuration.
func (c Config) brokerConfig() broker.Config {
	return broker.Config{
		StoreDir:        c.DataDir, // nats-server adds "jetstream/"
		Listen:          c.NATSListen,
		ServerName:      c.ServerName,
		ClusterName:     c.ClusterName,
		ClusterListen:   c.ClusterListen,
		Routes:          c.ClusterRoutes,
		ClusterUser:     c.ClusterUser,
		ClusterPassword: c.ClusterPassword,
		ClusterTLSCert:  c.ClusterTLSCert,
		ClusterTLSKey:   c.ClusterTLSKey,
		ClusterTLSCA:    c.ClusterTLSCA,
		Sync:            c.Sync,
		SyncEvery:       c.SyncEvery,
		MaxStore:        c.MaxStore,
		Logger:          c.Logger,
	}
}

// checkDrain checks the backend's form and the drain's numbers; nothing
// is opened or dialled.
func (c Config) checkDrain() error {
	if c.NoDrain {
		return nil
	}
	var errs []error
	if err := checkBackend(c.Backend); err != nil {
		errs = append(errs, settingErr("backend", err))
	}
	for _, n := range []struct {
		setting string
		v       int
	}{{"workers", c.Drain.Workers}, {"batch", c.Drain.Batch}, {"max-deliver", c.Drain.MaxDeliver}} {
		if n.v < 0 {
			errs = append(errs, settingf(n.setting, "%d: want 1 or more", n.v))
		}
	}
	if c.Drain.BackendRate < 0 {
		errs = append(errs, settingf("backend-rate", "%g: want 0 (no cap) or more", c.Drain.BackendRate))
	}
	return errors.Join(errs...)
}

// checkTLS checks that the public listener's certificate and key come
// together, load, and match.
func (c Config) checkTLS() error {
	switch {
	case c.TLSCert == "" && c.TLSKey == "":
		return nil
	case c.TLSKey == "":
		return settingErr("tls-cert", because{"needs --tls-key, the certificate's private key", ErrTLSConfig})
	case c.TLSCert == "":
		return settingErr("tls-key", because{"needs --tls-cert, the certificate of the key", ErrTLSConfig})
	}
	if _, err := loadKeyPair(c.TLSCert, c.TLSKey); err != nil {
		return settingErr("tls-cert", err)
	}
	return nil
}

// checkIdentity checks where the buyer comes from: the buyer token's
// settings, the buyer header and its proxies, and CORS.
func (c Config) checkIdentity() error {
	var errs []error
	bt := c.BuyerToken
	switch {
	case bt.JWKSURL != "" && bt.SecretFile != "":
		errs = append(errs, settingErr("buyer-token-jwks", because{"or --buyer-token-secret-file, not both: the shop signs its tokens one way", buyertoken.ErrConfig}))
	case bt.JWKSURL != "":
		u, err := url.Parse(bt.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, settingf("buyer-token-jwks", "%q: want the URL of the shop's JWKS, https://shop.example/.well-known/jwks.json", bt.JWKSURL))
		}
	case bt.SecretFile != "":
		if _, err := readSecret(bt.SecretFile); err != nil {
			errs = append(errs, settingErr("buyer-token-secret-file", err))
		}
	}
	if !bt.set() {
		for _, s := range []struct{ setting, v string }{
			{"buyer-token-cookie", bt.Cookie}, {"buyer-token-issuer", bt.Issuer}, {"buyer-token-audience", bt.Audience},
		} {
			if s.v != "" {
				errs = append(errs, settingf(s.setting, "needs --buyer-token-jwks or --buyer-token-secret-file: without one no token is verified"))
			}
		}
	}
	g := c.Gate
	switch {
	case g.BuyerHeader != "" && bt.set():
		errs = append(errs, settingErr("buyer-header", because{"or a buyer token (--buyer-token-jwks, --buyer-token-secret-file), not both: the buyer comes from one", admission.ErrTwoIdentities}))
	case g.BuyerHeader != "" && len(g.TrustedProxies) == 0:
		errs = append(errs, settingErr("buyer-header", because{
			fmt.Sprintf("%s needs --trusted-proxies: the header is believed from those peers only", g.BuyerHeader), admission.ErrBuyerHeaderUntrusted}))
	}
	if g.CORS.Credentials && len(g.CORS.Origins) == 0 {
		errs = append(errs, settingf("cors-credentials", "needs --cors-origin: credentials are allowed to the origins it lists only"))
	}
	for _, o := range g.CORS.Origins {
		if _, err := admission.ParseCORSOrigin(o); err != nil {
			errs = append(errs, settingErr("cors-origin", err))
		}
	}
	if len(errs) == 0 {
		// Whatever the gate checks beyond the above.
		g.BuyerTokens = nil
		if err := g.Validate(); err != nil {
			errs = append(errs, settingErr("cors-origin", err))
		}
	}
	return errors.Join(errs...)
}

// readSecret reads the buyer token's HS256 secret: its file, less a
// trailing newline, 32 bytes or more.
func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) < 32 {
		return nil, because{fmt.Sprintf("%s holds %d bytes: an HS256 secret needs 32 or more", path, len(b)), buyertoken.ErrSecret}
	}
	return b, nil
}

// renderer is the renderer of the operator's pages, nil for the
// built-in ones.
func (c Config) renderer() (*overflow.Renderer, error) {
	if c.SoldOutPage == "" && c.Pages == "" {
		return nil, nil
	}
	r := &overflow.Renderer{}
	var err error
	if c.Pages != "" {
		if r.Pages, err = overflow.LoadPages(os.DirFS(c.Pages)); err != nil {
			return nil, settingf("pages", "%s: %w", c.Pages, err)
		}
	}
	if c.SoldOutPage != "" {
		if r.SoldOutHTML, err = os.ReadFile(c.SoldOutPage); err != nil {
			return nil, settingErr("sold-out-page", err)
		}
	}
	return r, nil
}

// checkGC checks the GC settings cmd/sluice applies.
func (c Config) checkGC() error {
	var errs []error
	if c.GCPercent < 0 && c.MemoryLimit == 0 {
		errs = append(errs, settingf("gc-percent", "%d turns the collector off: give --memory-limit too, or 0 for the runtime's default", c.GCPercent))
	}
	if c.GCHeadroom < 0 {
		errs = append(errs, settingf("gc-headroom", "%d: want 0 or more", c.GCHeadroom))
	}
	if c.GCHeadroom > 0 && c.GCPercent >= 0 && c.GCPercent <= 100 {
		errs = append(errs, settingf("gc-headroom", "needs --gc-percent above 100: it lowers the percent towards 100 as the live heap grows (--gc-percent is %d)", c.GCPercent))
	}
	if c.MemoryLimit < 0 {
		errs = append(errs, settingf("memory-limit", "%d: want 0 or more", c.MemoryLimit))
	}
	return errors.Join(errs...)
}
