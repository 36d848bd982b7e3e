// Package orderstatus records what the drain did with each order in a
// JetStream key-value bucket, so that every gate sharing the JetStream
// domain answers an order's status, and keeps each sale's confirmed count.
package orderstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
)

// Order statuses as the API reports them.
const (
	Queued    = "queued"    // admitted, waiting for the drain
	Confirmed = "confirmed" // the backend took it
	Rejected  = "rejected"  // the backend refused it for good
	Failed    = "failed"    // the drain gave up: dead-lettered
)

// Status is an order's outcome as the drain recorded it.
type Status struct {
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// ErrNoStatus is returned for an order the drain has not finished.
var ErrNoStatus = errors.New("orderstatus: no outcome recorded")

// Bucket is the key-value bucket of order outcomes.
const Bucket = "SLUICE_STATUS"

// Store reads and writes order outcomes. It is safe for concurrent use.
type Store struct {
	kv jetstream.KeyValue
	js jetstream.JetStream
}

// Open creates (or opens) the bucket.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	if replicas <= 0 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "sluice: what the drain did with each order, and confirmed counts per sale",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("orderstatus: open bucket: %w", err)
	}
	return &Store{kv: kv, js: js}, nil
}

// Put records an order's outcome.
func (s *Store) Put(ctx context.Context, id ledger.OrderID, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, id.String(), b); err != nil {
		return fmt.Errorf("orderstatus: put %s: %w", id, err)
	}
	return nil
}

// CreateAll records the outcomes of many orders at once, pipelined: each
// is written only if the order has none yet (the first outcome stands, a
// redelivery does not overwrite it). created[i] says whether ids[i] was
// written now; errs[i] is set when it could not be recorded.
func (s *Store) CreateAll(ctx context.Context, ids []ledger.OrderID, sts []Status) (created []bool, errs []error) {
	created = make([]bool, len(ids))
	errs = make([]error, len(ids))
	futures := make([]jetstream.PubAckFuture, len(ids))
	for i, id := range ids {
		b, err := json.Marshal(sts[i])
		if err != nil {
			errs[i] = err
			continue
		}
		m := &nats.Msg{Subject: "$KV." + Bucket + "." + id.String(), Data: b}
		futures[i], errs[i] = s.js.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(0))
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			created[i] = true
		case err := <-f.Err():
			if !isWrongSequence(err) {
				errs[i] = fmt.Errorf("orderstatus: record %s: %w", ids[i], err)
			}
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return created, errs
}

// OrderStatus returns an order's outcome, or ErrNoStatus.
func (s *Store) OrderStatus(ctx context.Context, id ledger.OrderID) (Status, error) {
	e, err := s.kv.Get(ctx, id.String())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Status{}, ErrNoStatus
	}
	if err != nil {
		return Status{}, fmt.Errorf("orderstatus: get %s: %w", id, err)
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Status{}, fmt.Errorf("orderstatus: decode %s: %w", id, err)
	}
	return st, nil
}

func countKey(sale string) string { return "count." + sale + ".confirmed" }

// AddConfirmed adds n to a sale's confirmed count, with compare-and-set so
// that drainers in several processes add up.
func (s *Store) AddConfirmed(ctx context.Context, sale string, n int64) error {
	if n == 0 {
		return nil
	}
	key := countKey(sale)
	for {
		e, err := s.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.kv.Create(ctx, key, []byte(strconv.FormatInt(n, 10)))
		case err != nil:
			return fmt.Errorf("orderstatus: count %s: %w", sale, err)
		default:
			cur, _ := strconv.ParseInt(string(e.Value()), 10, 64)
			_, err = s.kv.Update(ctx, key, []byte(strconv.FormatInt(cur+n, 10)), e.Revision())
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return fmt.Errorf("orderstatus: count %s: %w", sale, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond) // lost a race with another drainer; read again
	}
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ConfirmedCount returns a sale's confirmed count.
func (s *Store) ConfirmedCount(ctx context.Context, sale string) (int64, error) {
	e, err := s.kv.Get(ctx, countKey(sale))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("orderstatus: count %s: %w", sale, err)
	}
	return strconv.ParseInt(string(e.Value()), 10, 64)
}
