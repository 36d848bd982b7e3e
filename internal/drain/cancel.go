package drain

import (
	"context"
	"time"

	"sluice/consumer"
	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
)

// Cancel cancels a confirmed order in the backend, when it can (a
// consumer.Canceller: the SQL backends, the row and the item in one
// transaction), and then in the decisions stream, once whatever is
// retried: the order reads cancelled and its slot goes back to the sale
// (to its variant, in a sale with variants).
// The backend first, so that the slot is never sold again while the
// backend still counts the order. It returns when the cancellation was
// recorded. The Drainer need not be started.
func (d *Drainer) Cancel(ctx context.Context, id ledger.OrderID, buyer, variant string) (time.Time, error) {
	if c, ok := d.backend.(consumer.Canceller); ok {
		if _, err := c.Cancel(ctx, consumer.Order{ID: id.String(), Sale: id.Sale, BuyerID: buyer, Variant: variant, Seq: id.Seq}); err != nil {
			return time.Time{}, err
		}
	}
	dec := orderstatus.Decision{Sale: id.Sale, At: time.Now().UTC(),
		Cancelled: []orderstatus.Outcome{{Seq: id.Seq, Reason: "cancelled", Buyer: buyer, Variant: variant}}}
	stored, err := d.status.RecordOnce(ctx, dec, "cancel-"+id.String())
	return stored.At, err
}
