package ledger

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/streams"
)

// ProbeStream is streams.Probe: a gate writes to it while the ledger
// refuses orders, to learn when the store takes writes again without
// writing an order.
const ProbeStream = streams.Probe

// EnsureProbe creates the probe stream if it does not exist.
func (l *Ledger) EnsureProbe(ctx context.Context) error {
	_, err := l.js.CreateOrUpdateStream(ctx, streams.ProbeConfig(streams.Options{Replicas: l.opts.Replicas}))
	if err != nil {
		return fmt.Errorf("%w: probe stream: %w", ErrUnavailable, err)
	}
	return nil
}

// Probe writes one message to the probe stream and returns nil once
// JetStream has stored it.
func (l *Ledger) Probe(ctx context.Context) error {
	if _, err := l.js.Publish(ctx, streams.ProbeSubject, nil, jetstream.WithExpectStream(ProbeStream)); err != nil {
		return fmt.Errorf("%w: probe: %w", ErrUnavailable, err)
	}
	return nil
}
