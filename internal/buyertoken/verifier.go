// Package buyertoken verifies the shop's buyer tokens: JWTs signed with a
// secret shared with the shop (HS256) or with a key from the shop's JWKS
// (RS256, ES256, EdDSA). The buyer is the token's sub.
//
// A Verifier holding a JWKS runs one goroutine, which reads the keys
// until it has them (retrying with backoff: a shop down when the gate
// starts does not stop the gate) and then refreshes them; Stop ends it.
// Until a key set has been read, Ready is false and Buyer refuses every
// token with ErrNoKeys. Verification itself does no I/O, except that a
// token naming a key the Verifier does not hold fetches the JWKS at once
// (at most once per UnknownKeyEvery), so that a key the shop just
// rotated in is taken without waiting for the next refresh.
package buyertoken

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults of Options.
const (
	DefaultLeeway          = 30 * time.Second
	DefaultRefresh         = 5 * time.Minute
	DefaultUnknownKeyEvery = 10 * time.Second
	DefaultFetchTimeout    = 5 * time.Second
	DefaultRetry           = time.Second
	// RetryMax bounds the backoff between reads of a JWKS never read.
	RetryMax = 30 * time.Second
	// maxJWKS bounds a JWKS document.
	maxJWKS = 1 << 20
)

// Options configure a Verifier. Exactly one of Secret and JWKSURL is set.
type Options struct {
	// Secret is the HS256 key shared with the shop, 32 bytes or more.
	Secret []byte
	// JWKSURL is where the shop publishes its public keys.
	JWKSURL string
	// Issuer and Audience, when set, must be the token's iss and one of
	// its aud.
	Issuer, Audience string
	// Leeway is the clock skew tolerated on exp and nbf; zero means
	// DefaultLeeway, negative none.
	Leeway time.Duration
	// Refresh is how often the JWKS is fetched again; zero means
	// DefaultRefresh.
	Refresh time.Duration
	// UnknownKeyEvery bounds the fetches a token naming an unknown key
	// causes; zero means DefaultUnknownKeyEvery.
	UnknownKeyEvery time.Duration
	// Retry is the first wait before reading again a JWKS that could not
	// be read and was never read; it doubles up to RetryMax. Zero means
	// DefaultRetry.
	Retry time.Duration
	// Client fetches the JWKS; nil means one with DefaultFetchTimeout.
	Client *http.Client
	Logger *slog.Logger
	// now is the clock; nil means time.Now (tests set it).
	now func() time.Time
}

// Verifier verifies buyer tokens. It is safe for concurrent use.
type Verifier struct {
	opts   Options
	parser *jwt.Parser
	secret []byte
	keys   atomic.Pointer[keyfunc.Keyfunc]
	// fetchMu serialises fetches; lastUnknown is when a token naming an
	// unknown key last caused one.
	fetchMu     sync.Mutex
	lastUnknown time.Time
	// The reads of the JWKS that succeeded and failed, and when the last
	// one succeeded (Unix ns; zero before the first).
	fetched, failed atomic.Int64
	fetchedAt       atomic.Int64
	stop            context.CancelFunc
	done            chan struct{}
}

// New returns a Verifier. With a JWKS URL it reads the keys once before
// returning, within ctx; if they cannot be read it logs why and returns
// all the same, not Ready, and reads them again in the background with
// backoff: a gate whose shop is down at its start comes up and answers
// 503 until the keys arrive, rather than stopping (a crash loop under a
// supervisor). It refreshes them until Stop. Only a bad configuration is
// an error.
func New(ctx context.Context, o Options) (*Verifier, error) {
	if (len(o.Secret) == 0) == (o.JWKSURL == "") {
		return nil, ErrConfig
	}
	if o.Secret != nil && len(o.Secret) < 32 {
		return nil, ErrSecret
	}
	if o.JWKSURL != "" {
		if u, err := url.Parse(o.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: %q", ErrJWKSURL, o.JWKSURL)
		}
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
	if o.Leeway == 0 {
		o.Leeway = DefaultLeeway
	}
	o.Leeway = max(0, o.Leeway)
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.UnknownKeyEvery <= 0 {
		o.UnknownKeyEvery = DefaultUnknownKeyEvery
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: DefaultFetchTimeout}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	methods := []string{"HS256"}
	if o.JWKSURL != "" {
		methods = []string{"RS256", "ES256", "EdDSA"}
	}
	// WithIssuedAt checks iat too: that it is a NumericDate, and not
	// later than now beyond the leeway.
	popts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(o.Leeway),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(o.now)}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	v := &Verifier{opts: o, parser: jwt.NewParser(popts...), secret: o.Secret, done: make(chan struct{})}
	if o.JWKSURL == "" {
		close(v.done)
		v.stop = func() {}
		return v, nil
	}
	if err := v.fetch(ctx); err != nil {
		o.Logger.Warn("cannot read the shop's JWKS: every order and join that needs a buyer token is answered 503 until it is read; reading it again in the background",
			"url", o.JWKSURL, "err", err, "retry_in", o.Retry)
	}
	rctx, cancel := context.WithCancel(context.Background())
	v.stop = cancel
	go v.refresh(rctx)
	return v, nil
}

// Ready reports whether tokens can be verified: a key set of the shop's
// JWKS has been read (once read, keys are only ever replaced), or the
// key is a secret.
func (v *Verifier) Ready() bool { return v.secret != nil || v.keys.Load() != nil }

// Fetches tells the reads of the JWKS that succeeded and failed, and
// when the last one succeeded (zero before the first; always zero with a
// secret).
func (v *Verifier) Fetches() (ok, failed int64, last time.Time) {
	if ns := v.fetchedAt.Load(); ns != 0 {
		last = time.Unix(0, ns)
	}
	return v.fetched.Load(), v.failed.Load(), last
}

// Stop ends the refresh and returns when it has. Calling it twice is safe.
func (v *Verifier) Stop() {
	v.stop()
	<-v.done
}

func (v *Verifier) refresh(ctx context.Context) {
	defer close(v.done)
	// Until a key set is read: again and again, with backoff.
	for wait := v.opts.Retry; v.keys.Load() == nil; {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		err := v.fetch(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			wait = min(2*wait, max(RetryMax, v.opts.Retry))
			v.opts.Logger.Warn("cannot read the shop's JWKS: still answering 503 to every order and join that needs a buyer token",
				"url", v.opts.JWKSURL, "err", err, "retry_in", wait)
		default:
			v.opts.Logger.Info("the shop's JWKS is read: buyer tokens are verified", "url", v.opts.JWKSURL)
		}
	}
	t := time.NewTicker(v.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := v.fetch(ctx); err != nil && ctx.Err() == nil {
				v.opts.Logger.Warn("cannot refresh the shop's JWKS: keeping the keys held", "url", v.opts.JWKSURL, "err", err)
			}
		}
	}
}

// fetch reads the JWKS and replaces the keys held.
func (v *Verifier) fetch(ctx context.Context) error {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	err := v.fetchLocked(ctx)
	if err != nil {
		v.failed.Add(1)
		return err
	}
	v.fetched.Add(1)
	v.fetchedAt.Store(time.Now().UnixNano())
	return nil
}

func (v *Verifier) fetchLocked(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.opts.JWKSURL, nil)
	if err != nil {
		return fmt.Errorf("buyertoken: JWKS %s: %w", v.opts.JWKSURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("buyertoken: fetch the JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("buyertoken: fetch the JWKS %s: %s", v.opts.JWKSURL, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	if err != nil {
		return fmt.Errorf("buyertoken: read the JWKS: %w", err)
	}
	if len(raw) > maxJWKS {
		return fmt.Errorf("buyertoken: the JWKS %s is over %d bytes", v.opts.JWKSURL, maxJWKS)
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return fmt.Errorf("buyertoken: the JWKS %s: %w", v.opts.JWKSURL, err)
	}
	if all, err := kf.Storage().KeyReadAll(ctx); err != nil || len(all) == 0 {
		return fmt.Errorf("buyertoken: the JWKS %s holds no key it can use", v.opts.JWKSURL)
	}
	v.keys.Store(&kf)
	return nil
}

// key is the jwt.Keyfunc: the secret, or the JWKS key the token names,
// fetching the JWKS again when it names one not held.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	if v.secret != nil {
		return v.secret, nil
	}
	held := v.keys.Load()
	if held == nil {
		return nil, ErrNoKeys
	}
	kf := *held
	k, err := kf.Keyfunc(t)
	if err == nil || !errors.Is(err, jwkset.ErrKeyNotFound) {
		return k, err
	}
	if !v.mayFetch() {
		return nil, ErrUnknownKey
	}
	ctx, cancel := context.WithTimeout(context.Background(), v.opts.Client.Timeout+time.Second)
	defer cancel()
	if err := v.fetch(ctx); err != nil {
		v.opts.Logger.Warn("a token names an unknown key and the JWKS cannot be read", "url", v.opts.JWKSURL, "err", err)
		return nil, ErrUnknownKey
	}
	kf = *v.keys.Load()
	if k, err = kf.Keyfunc(t); errors.Is(err, jwkset.ErrKeyNotFound) {
		return nil, ErrUnknownKey
	}
	return k, err
}

// mayFetch reports whether a token naming an unknown key may fetch the
// JWKS now: tokens with made-up key ids must not make the gate fetch per
// request.
func (v *Verifier) mayFetch() bool {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	now := v.opts.now()
	if now.Sub(v.lastUnknown) < v.opts.UnknownKeyEvery {
		return false
	}
	v.lastUnknown = now
	return true
}

// Buyer returns the buyer a token was issued to: its sub, once its
// signature, algorithm, expiry (exp required), nbf, iat, issuer and
// audience are checked. The error matches one of the Err* reasons, and
// its text names the claim at fault.
//
// The claims are decoded into jwt.MapClaims, not RegisteredClaims: the
// latter reads a date through json.Number, which takes a string that
// spells a number ("exp":"1999999999"), where RFC 7519's NumericDate is
// a JSON number. MapClaims' accessors refuse a string date.
func (v *Verifier) Buyer(token string) (string, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.key); err != nil {
		return "", v.reason(err, claims)
	}
	sub, err := claims.GetSubject()
	switch {
	case err != nil:
		return "", claimType("sub", "a string")
	case sub == "":
		return "", ErrSubject
	}
	return sub, nil
}

// reason maps the library's error to the one reason told the client.
// Claims are looked at only when the signature verified (the library
// checks them last): what they hold is then the shop's, and the reason
// names the claim at fault, the first in a fixed order when several are.
func (v *Verifier) reason(err error, claims jwt.MapClaims) error {
	for _, r := range []error{ErrNoKeys, ErrUnknownKey, ErrAlgorithm} {
		if errors.Is(err, r) {
			return r
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrInvalidKeyType), errors.Is(err, jwt.ErrInvalidKey):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The parser refuses an algorithm outside WithValidMethods (alg
		// none included) and a key the token's algorithm cannot use
		// before any signature check.
		return ErrAlgorithm
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// The library tells which claim only in its error's text: ask its
	// own accessors which one it could not read, or found missing.
	if errors.Is(err, jwt.ErrInvalidType) {
		for _, d := range []struct {
			name string
			get  func() (*jwt.NumericDate, error)
		}{{"exp", claims.GetExpirationTime}, {"nbf", claims.GetNotBefore}, {"iat", claims.GetIssuedAt}} {
			if _, err := d.get(); err != nil {
				return claimType(d.name, "a NumericDate (a JSON number of seconds since 1970)")
			}
		}
		if _, err := claims.GetIssuer(); err != nil {
			return claimType("iss", "a string")
		}
		if _, err := claims.GetAudience(); err != nil {
			return claimType("aud", "a string or an array of strings")
		}
	}
	if errors.Is(err, jwt.ErrTokenRequiredClaimMissing) {
		if exp, _ := claims.GetExpirationTime(); exp == nil {
			return ErrNoExpiry
		}
		if iss, _ := claims.GetIssuer(); iss == "" && v.opts.Issuer != "" {
			return ErrNoIssuer
		}
		if aud, _ := claims.GetAudience(); len(aud) == 0 && v.opts.Audience != "" {
			if _, given := claims["aud"]; given {
				// A number or an object: the accessor reads it as none.
				return claimType("aud", "a string or an array of strings")
			}
			return ErrNoAudience
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ErrNotYet
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrIssuedLater
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// claimTypeError is a registered claim of the wrong JSON type.
type claimTypeError struct{ claim, want string }

func claimType(claim, want string) error { return &claimTypeError{claim, want} }

func (e *claimTypeError) Error() string { return "its " + e.claim + " is not " + e.want }

// Is makes errors.Is(err, ErrClaimType) true.
func (e *claimTypeError) Is(target error) bool { return target == ErrClaimType }
