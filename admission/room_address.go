package admission

import (
	"context"
	"encoding/hex"
	"errors"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/waitingroom"
	"sluice/overflow"
)

// addressKey is the block a line_per_address counts a client in: its
// IPv4 address, or its IPv6 /56 (what a provider hands one subscriber;
// a /64 would let one home mint 256 keys). Hex, for a subject.
func addressKey(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return hex.EncodeToString(b[:])
	}
	b := a.As16()
	return hex.EncodeToString(b[:7])
}

// checkAddress counts the join against its client address when the sale
// sets line_per_address, across gates (ledger.TakeAddressSlot). The
// address is the peer's, or behind --trusted-proxies the client's. It
// returns the problem to answer with, if any.
func (g *Gate) checkAddress(rc *fasthttp.RequestCtx, s *sale, cfg *ledger.Sale, buyer string) overflow.Problem {
	if cfg.LinePerAddress <= 0 {
		return overflow.Problem{}
	}
	a := g.clientIP(rc)
	if !a.IsValid() {
		return overflow.Problem{Reason: overflow.BadRequest, Detail: "The client's address is not known."}
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	switch err := g.roomStore.TakeAddressSlot(ctx, s.name, addressKey(a), buyer, cfg.LinePerAddress); {
	case errors.Is(err, waitingroom.ErrAddressFull):
		return overflow.Problem{Reason: overflow.AddressLimit}
	case err != nil:
		g.log.Warn("cannot count a ticket against its address", "sale", s.name, "err", err)
		return overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second,
			Detail: "The line did not take the ticket; joining again is safe."}
	}
	return overflow.Problem{}
}
