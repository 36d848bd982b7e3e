package broker

import "errors"

// ErrClusterAuth: a cluster user and password go together.
var ErrClusterAuth = errors.New("broker: --cluster-user and --cluster-password must be given together")

// ErrClusterTLS: route TLS needs a certificate, its key and the CA.
var ErrClusterTLS = errors.New("broker: route TLS needs --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca together")

// ErrServerName: a clustered server needs a name of its own.
var ErrServerName = errors.New("broker: a clustered server needs a server name")
