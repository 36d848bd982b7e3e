package waitingroom

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
	"sluice/internal/streams"
)

// ProofSubject is the subject of a solution's record: the broker refuses
// a second one, so a solution buys one ticket whichever gate it is shown
// to (streams.ProofsConfig).
func ProofSubject(sale, challenge string) string { return streams.ProofSubjectPrefix(sale) + challenge }

// SpendProof records that the solution of challenge (hex, as verified by
// package proof) bought buyer's ticket in sale. The same buyer spending it
// again (a join retried after a failure) is not refused: the line gives
// that buyer the one ticket they hold. Another buyer gets ErrProofUsed.
func (st *Store) SpendProof(ctx context.Context, sale, challenge, buyer string) error {
	subj := ProofSubject(sale, challenge)
	_, err := st.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte(buyer)}, jetstream.WithExpectStream(streams.Proofs))
	switch streams.RefusalOf(err) {
	case streams.RefusedSubjectFull:
		str, serr := st.js.Stream(ctx, streams.Proofs)
		if serr != nil {
			return fmt.Errorf("%w: %w", ledger.ErrUnavailable, serr)
		}
		prev, gerr := str.GetLastMsgForSubject(ctx, subj)
		if gerr != nil {
			return fmt.Errorf("%w: read back the spent proof: %w", ledger.ErrUnavailable, gerr)
		}
		if string(prev.Data) == buyer {
			return nil
		}
		return ErrProofUsed
	case streams.RefusedNoRoom:
		return fmt.Errorf("%w: %w: %w", ledger.ErrUnavailable, ledger.ErrStoreFull, err)
	}
	if err != nil {
		return fmt.Errorf("%w: spend a proof: %w", ledger.ErrUnavailable, err)
	}
	return nil
}
