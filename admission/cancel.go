package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/orderstatus"
	"sluice/overflow"
)

// OrderCanceller cancels a confirmed order: in the backend when the
// backend can (the SQL backends give the item back in the same
// transaction), then in the decisions stream, which gives the order's slot
// back to the sale. It must be idempotent, and return the time the
// decisions stream records: a repeated cancel answers the first one's.
type OrderCanceller func(ctx context.Context, id ledger.OrderID, buyer, variant string) (time.Time, error)

// adminCancel is POST /admin/orders/{id}/cancel: the shop cancels an
// order it confirmed (unpaid after its payment window, say). Only a
// confirmed order can be: a queued one is not decided yet, a rejected or
// failed one holds nothing to give back. Cancelling twice is a no-op.
func (g *Gate) adminCancel(w http.ResponseWriter, r *http.Request) {
	id, err := ledger.ParseOrderID(r.PathValue("id"))
	if err != nil {
		g.notFound.Write(w, false)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.PublishTimeout)
	defer cancel()
	v, err := g.findOrder(ctx, id)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		g.notFound.Write(w, false)
		return
	case err != nil:
		g.unavailable.Write(w, false)
		return
	}
	conflict := func(detail string) {
		g.render.Render(overflow.Problem{Reason: overflow.Conflict, Sale: v.Sale, OrderID: id.String(), Detail: detail}).Write(w, false)
	}
	switch v.Status {
	case orderstatus.Cancelled:
		writeJSON(w, http.StatusOK, v)
		return
	case orderstatus.Queued:
		conflict("The order is queued: the backend has not decided it yet. Cancel it once it is confirmed.")
		return
	case orderstatus.Rejected, orderstatus.Failed:
		conflict(fmt.Sprintf("The order was not confirmed (%s: %s): there is nothing to give back.", v.Status, v.Reason))
		return
	}
	if g.canceller == nil {
		conflict("This gate does not drain into the backend: send the cancel to the sluice serve that does.")
		return
	}
	at, err := g.canceller(ctx, id, v.BuyerID, v.Variant)
	if err != nil {
		g.log.Warn("cancel failed", "order", id.String(), "err", err)
		g.unavailable.Write(w, false)
		return
	}
	v.Status, v.Reason, v.DecidedAt = orderstatus.Cancelled, "cancelled", at.UTC()
	writeJSON(w, http.StatusOK, v)
}
