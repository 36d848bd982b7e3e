package drain

import "sluice/consumer"

// WithAfterCommit returns cfg with a hook that runs after the backend
// committed a batch and before anything is recorded or acked; returning
// false abandons the batch there, as a crash of the worker would.
func WithAfterCommit(cfg Config, f func([]consumer.Order) bool) Config {
	cfg.afterCommit = f
	return cfg
}
