package buyertoken

import "errors"

// Why a token is refused. Verifier.Buyer's errors match one of these with
// errors.Is; their text is what the gate tells the client.
var (
	ErrMalformed  = errors.New("it is not a signed JWT")
	ErrAlgorithm  = errors.New("its algorithm is not one the key allows")
	ErrSignature  = errors.New("its signature does not verify")
	ErrUnknownKey = errors.New("it names a key the shop's JWKS does not hold")
	// ErrNoKeys: no key set of the shop's JWKS has been read yet, so no
	// token can be checked (Verifier.Ready is false).
	ErrNoKeys     = errors.New("the shop's keys (JWKS) have not been read yet")
	ErrExpired    = errors.New("it has expired")
	ErrNotYet     = errors.New("it is not valid yet")
	ErrNoExpiry   = errors.New("it has no expiry (exp)")
	ErrNoIssuer   = errors.New("it names no issuer (iss)")
	ErrNoAudience = errors.New("it names no audience (aud)")
	ErrIssuer     = errors.New("its issuer is not the shop's")
	ErrAudience   = errors.New("its audience is not this gate")
	ErrSubject    = errors.New("it names no buyer (sub)")
	// ErrIssuedLater: its iat is later than now (beyond the leeway).
	ErrIssuedLater = errors.New("it was issued in the future (iat)")
	// ErrClaimType: a registered claim of the wrong JSON type, e.g. a
	// date as a string; the error's text names the claim.
	ErrClaimType = errors.New("a registered claim has the wrong type")
)

// Errors of New.
var (
	// ErrConfig: the options name no key, or two.
	ErrConfig = errors.New("buyertoken: set exactly one of a secret and a JWKS URL")
	// ErrSecret: an HS256 secret shorter than 32 bytes.
	ErrSecret = errors.New("buyertoken: the secret must be at least 32 bytes")
	// ErrJWKSURL: a JWKS URL that is not http(s)://host/...
	ErrJWKSURL = errors.New("buyertoken: the JWKS URL must be http:// or https:// with a host")
)
