package serve

import "errors"

// ErrTLSConfig: --tls-cert and --tls-key go together.
var ErrTLSConfig = errors.New("serve: --tls-cert and --tls-key must be given together")
