package admission

import "errors"

// ErrBadConfig is returned by Config.Validate for a setting the gate
// cannot run with; the message names the setting and what to fix.
var ErrBadConfig = errors.New("admission: bad config")

// ErrBadDeps is returned by Deps.Validate (and New) for parts a gate
// cannot be built of.
var ErrBadDeps = errors.New("admission: bad deps")

// Errors of Config.Validate.
var (
	// ErrBuyerHeaderUntrusted: a buyer header is named but no trusted
	// proxy is: nobody could send it, or everybody, so neither is meant.
	ErrBuyerHeaderUntrusted = errors.New("admission: --buyer-header needs --trusted-proxies: the header is believed from those peers only")
	// ErrTwoIdentities: both a buyer header and buyer tokens are set.
	ErrTwoIdentities = errors.New("admission: the buyer comes from a token or from a header, not both")
)
