package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"sluice/internal/waitingroom/line"
)

// Draw is a waiting room's draw as its public endpoints give it: the
// commitment published before the start, the seed revealed after it, and
// the drawn tickets' hashes (line.TicketHash) in position order (Hashes[0]
// holds position 1). The ticket ids are their holders' secrets: never
// public.
type Draw struct {
	Commitment string
	Seed       string
	Hashes     []string
}

// Verify checks the draw from its public data alone (line.VerifyDraw).
func (d Draw) Verify() error { return line.VerifyDraw(d.Seed, d.Commitment, d.Hashes) }

// Position is the position of the ticket whose id the holder knows
// (found by its hash), 0 when it is not drawn.
func (d Draw) Position(ticketID string) int {
	h := line.TicketHash(ticketID)
	for i, x := range d.Hashes {
		if x == h {
			return i + 1
		}
	}
	return 0
}

// FetchDraw reads a sale's draw from a gate (base is its public API):
// GET /v1/sales/{sale}/draw, then the drawn tickets page by page. It fails
// while the draw is not made, and when the pages do not add up.
func FetchDraw(ctx context.Context, c *http.Client, base, sale string) (Draw, error) {
	base = strings.TrimRight(base, "/")
	path := "/v1/sales/" + url.PathEscape(sale)
	var head struct {
		Commitment string  `json:"commitment"`
		Seed       *string `json:"seed"`
		Sealed     bool    `json:"sealed"`
		Tickets    int     `json:"tickets"`
	}
	if err := getJSON(ctx, c, base+path+"/draw", &head); err != nil {
		return Draw{}, err
	}
	if !head.Sealed || head.Seed == nil {
		return Draw{}, fmt.Errorf("%s: the draw is not made yet (it is, at the start; the seed is revealed then)", sale)
	}
	d := Draw{Commitment: head.Commitment, Seed: *head.Seed}
	for next := path + "/draw/tickets?limit=10000"; next != ""; {
		var page struct {
			Total  int      `json:"total"`
			Offset int      `json:"offset"`
			Hashes []string `json:"ticket_hashes"`
			Next   string   `json:"next"`
		}
		if err := getJSON(ctx, c, base+next, &page); err != nil {
			return Draw{}, err
		}
		if page.Offset != len(d.Hashes) || page.Total != head.Tickets {
			return Draw{}, fmt.Errorf("%s: the pages of the drawn tickets do not add up (offset %d after %d tickets, total %d of %d)",
				sale, page.Offset, len(d.Hashes), page.Total, head.Tickets)
		}
		d.Hashes = append(d.Hashes, page.Hashes...)
		next = page.Next
	}
	if len(d.Hashes) != head.Tickets {
		return Draw{}, fmt.Errorf("%s: %d tickets listed, the draw says %d", sale, len(d.Hashes), head.Tickets)
	}
	return d, nil
}
