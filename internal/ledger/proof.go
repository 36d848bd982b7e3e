package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ProofStream holds the proofs of work spent on tickets, one subject per
// solution (its challenge) holding the buyer it bought a ticket for: the
// broker refuses a second record on the subject, so a solution buys one
// ticket whichever gate it is shown to. Records outlive the challenges
// they spend (proof.TTL) and then age out.
const ProofStream = "SLUICE_PROOFS"

// proofMaxAge bounds a spent proof's record: longer than any challenge's
// life, after which the challenge is refused as expired anyway.
const proofMaxAge = time.Hour

// ErrProofUsed: the solution bought another buyer's ticket already.
var ErrProofUsed = errors.New("ledger: the proof of work was spent already")

// ProofSubject is the subject of a solution's record.
func ProofSubject(sale, challenge string) string { return "sluice.proof." + sale + "." + challenge }

func (l *Ledger) ensureProofs(ctx context.Context) error {
	if _, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:                 ProofStream,
		Description:          "sluice: proofs of work spent on waiting-room tickets, one subject per solution",
		Subjects:             []string{"sluice.proof.>"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             l.opts.Replicas,
		MaxAge:               proofMaxAge,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           2 * time.Minute,
		MaxMsgSize:           512,
		DenyDelete:           true,
		DenyPurge:            true,
	}); err != nil {
		return fmt.Errorf("ledger: provision %s: %w", ProofStream, err)
	}
	return nil
}

// SpendProof records that the solution of challenge (hex, as verified by
// package proof) bought buyer's ticket in sale. The same buyer spending it
// again (a join retried after a failure) is not refused: the line gives
// that buyer the one ticket they hold. Another buyer gets ErrProofUsed.
func (l *Ledger) SpendProof(ctx context.Context, sale, challenge, buyer string) error {
	subj := ProofSubject(sale, challenge)
	_, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte(buyer)}, jetstream.WithExpectStream(ProofStream))
	switch refusalOf(err) {
	case refusedSubjectFull:
		str, serr := l.js.Stream(ctx, ProofStream)
		if serr != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, serr)
		}
		prev, gerr := str.GetLastMsgForSubject(ctx, subj)
		if gerr != nil {
			return fmt.Errorf("%w: read back the spent proof: %w", ErrUnavailable, gerr)
		}
		if string(prev.Data) == buyer {
			return nil
		}
		return ErrProofUsed
	case refusedNoRoom:
		return fmt.Errorf("%w: %w: %w", ErrUnavailable, ErrStoreFull, err)
	}
	if err != nil {
		return fmt.Errorf("%w: spend a proof: %w", ErrUnavailable, err)
	}
	return nil
}
