package admission

import "errors"

// Errors of Config.Validate.
var (
	// ErrBuyerHeaderUntrusted: a buyer header is named but no trusted
	// proxy is: nobody could send it, or everybody, so neither is meant.
	ErrBuyerHeaderUntrusted = errors.New("admission: --buyer-header needs --trusted-proxies: the header is believed from those peers only")
	// ErrTwoIdentities: both a buyer header and buyer tokens are set.
	ErrTwoIdentities = errors.New("admission: the buyer comes from a token or from a header, not both")
)
