package ledger

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ProbeStream is a one-message stream, stored like the sales' streams,
// that a gate writes to while the ledger refuses orders (a full disk, a
// store that stopped answering) to learn when it takes writes again
// without writing an order.
const (
	ProbeStream  = "SLUICE_PROBE"
	probeSubject = "sluice.probe"
)

// EnsureProbe creates the probe stream if it does not exist.
func (l *Ledger) EnsureProbe(ctx context.Context) error {
	_, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        ProbeStream,
		Description: "sluice: a gate's probe of the store while it refuses orders",
		Subjects:    []string{probeSubject},
		Storage:     jetstream.FileStorage,
		Replicas:    l.opts.Replicas,
		MaxMsgs:     1,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("%w: probe stream: %w", ErrUnavailable, err)
	}
	return nil
}

// Probe writes one message to the probe stream and returns nil once
// JetStream has stored it.
func (l *Ledger) Probe(ctx context.Context) error {
	if _, err := l.js.Publish(ctx, probeSubject, nil, jetstream.WithExpectStream(ProbeStream)); err != nil {
		return fmt.Errorf("%w: probe: %w", ErrUnavailable, err)
	}
	return nil
}
