package streams

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream error codes told apart (nats-server's
// jetstream_errors_generated.go).
const (
	errCodeStoreFailed           = 10077 // JSStreamStoreFailedF: a limit refused the message
	errCodeDuplicateInProcess    = 10158 // JSStreamDuplicateMessageConflict: the same id is being stored
	errCodeInsufficientResources = 10023 // JSInsufficientResourcesErr: no room in the store
)

// Descriptions the server gives with errCodeStoreFailed (server/store.go).
const (
	descMaxMsgs           = "maximum messages exceeded"
	descMaxMsgsPerSubject = "maximum messages per subject exceeded"
)

// Refusal is why JetStream refused a publish to a limited stream.
type Refusal int

const (
	// RefusedOther: not a limit (unavailable, timed out, …), or no refusal.
	RefusedOther Refusal = iota
	// RefusedFull: the stream's MaxMsgs (DiscardNew): a sale's stock, a
	// line's bound.
	RefusedFull
	// RefusedSubjectFull: the subject's MaxMsgsPerSubject: a buyer's
	// orders, a buyer's ticket, a spent proof, an address slot.
	RefusedSubjectFull
	// RefusedNoRoom: the store has no room left.
	RefusedNoRoom
)

// RefusalOf says which limit refused a publish that failed with err.
func RefusalOf(err error) Refusal {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return RefusedOther
	}
	switch {
	case apiErr.ErrorCode == errCodeStoreFailed && apiErr.Description == descMaxMsgs:
		return RefusedFull
	case apiErr.ErrorCode == errCodeStoreFailed && apiErr.Description == descMaxMsgsPerSubject:
		return RefusedSubjectFull
	case apiErr.ErrorCode == errCodeInsufficientResources:
		return RefusedNoRoom
	}
	return RefusedOther
}

// WrongLastSequence says a publish was refused because the stream (or the
// subject) moved past the sequence it expected: a compare-and-set lost.
func WrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// InProcess says that JetStream refused a publish because another with
// the same message id is being stored at that moment (error 10158, seen
// on clustered streams): the first one's outcome is not known yet, and a
// retry after it is answered as its duplicate.
func InProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeDuplicateInProcess
}

// PublishDeduplicated publishes msg with its message id, waiting out a
// concurrent publish of the same id (InProcess) until ctx ends: the
// answer is then the stored message's, as a duplicate.
func PublishDeduplicated(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	wait := 5 * time.Millisecond
	for {
		ack, err := js.PublishMsg(ctx, msg, opts...)
		if !InProcess(err) {
			return ack, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}
