package admission

import "errors"

// ErrBadConfig is returned by Config.Validate for a setting the gate
// cannot run with; the message names the setting and what to fix.
var ErrBadConfig = errors.New("admission: bad config")
