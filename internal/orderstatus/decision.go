package orderstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/streams"
)

// Stream holds the decisions (streams.DecisionsConfig).
const Stream = streams.Decisions

// Subject is the subject of a sale's decisions.
func Subject(sale string) string { return streams.DecisionSubject(sale) }

// Order statuses as the API reports them.
const (
	Queued    = "queued"    // admitted, waiting for the drain
	Confirmed = "confirmed" // the backend took it
	Rejected  = "rejected"  // the backend refused it for good
	Failed    = "failed"    // the drain gave up: dead-lettered
	Cancelled = "cancelled" // confirmed, then cancelled by the shop
)

// Status is an order's outcome.
type Status struct {
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// ErrNoStatus is returned for an order no decision names yet.
var ErrNoStatus = errors.New("orderstatus: not decided yet")

// Decision is what one drain batch decided for orders of one sale, named
// by their ledger sequence.
type Decision struct {
	Sale      string    `json:"sale"`
	At        time.Time `json:"at"`
	Confirmed []uint64  `json:"confirmed,omitempty"`
	Rejected  []Outcome `json:"rejected,omitempty"`
	Failed    []Outcome `json:"failed,omitempty"`
	// Cancelled are confirmed orders the shop cancelled (the admin API).
	Cancelled []Outcome `json:"cancelled,omitempty"`
}

// Outcome is a refused or failed order and why, and its buyer (recorded
// since orders release their slot; absent in older records).
type Outcome struct {
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
	Buyer  string `json:"buyer,omitempty"`
	// Variant is the order's variant, in a sale with variants: a
	// released order gives its item back to it.
	Variant string `json:"variant,omitempty"`
}

// ReasonSoldOut is the reason of a backend that had no stock left.
const ReasonSoldOut = "sold_out"

// Releases says whether an order that ended with this status gives its
// slot back to the sale: a rejected or failed one does, unless the
// backend refused it for want of stock (it would refuse the next one too).
func (st Status) Releases() bool {
	switch st.Status {
	case Rejected:
		return st.Reason != ReasonSoldOut
	case Failed, Cancelled:
		return true
	}
	return false
}

// Empty says the decision names no order.
func (d Decision) Empty() bool {
	return len(d.Confirmed) == 0 && len(d.Rejected) == 0 && len(d.Failed) == 0 && len(d.Cancelled) == 0
}

// Provision creates (or updates) the decisions stream.
func Provision(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateOrUpdateStream(ctx, streams.DecisionsConfig(streams.Options{Replicas: replicas}))
	if err != nil {
		return fmt.Errorf("orderstatus: provision %s: %w", Stream, err)
	}
	return nil
}

// Recorder publishes decisions. It is safe for concurrent use.
type Recorder struct {
	js jetstream.JetStream
}

// OpenRecorder provisions the decisions stream and returns a Recorder.
func OpenRecorder(ctx context.Context, js jetstream.JetStream, replicas int) (*Recorder, error) {
	if err := Provision(ctx, js, replicas); err != nil {
		return nil, err
	}
	return &Recorder{js: js}, nil
}

// RecordOnce stores a decision under a message id: JetStream keeps one
// record per id however often it is sent within its duplicate window. It
// returns the decision stored, which is the first one sent: a later send
// (a repeated cancel) answers with the first one's time, not its own.
func (r *Recorder) RecordOnce(ctx context.Context, d Decision, msgID string) (Decision, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return Decision{}, fmt.Errorf("orderstatus: encode: %w", err)
	}
	// Concurrent records of one decision (cancels of one order at two
	// gates) wait for the first: one is stored, all are answered.
	ack, err := streams.PublishDeduplicated(ctx, r.js, &nats.Msg{Subject: Subject(d.Sale), Data: b}, jetstream.WithMsgID(msgID))
	if err != nil {
		return Decision{}, fmt.Errorf("orderstatus: record: %w", err)
	}
	if !ack.Duplicate {
		return d, nil
	}
	// A duplicate's ack names the stored record's sequence.
	s, err := r.js.Stream(ctx, Stream)
	if err != nil {
		return Decision{}, fmt.Errorf("orderstatus: read the record of %s: %w", msgID, err)
	}
	m, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return Decision{}, fmt.Errorf("orderstatus: read the record of %s: %w", msgID, err)
	}
	var stored Decision
	if err := json.Unmarshal(m.Data, &stored); err != nil {
		return Decision{}, fmt.Errorf("orderstatus: decode the record of %s: %w", msgID, err)
	}
	return stored, nil
}

// Record stores a decision and returns once JetStream has it.
func (r *Recorder) Record(ctx context.Context, d Decision) error {
	if d.Empty() {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("orderstatus: encode: %w", err)
	}
	if _, err := r.js.Publish(ctx, Subject(d.Sale), b); err != nil {
		return fmt.Errorf("orderstatus: record: %w", err)
	}
	return nil
}
