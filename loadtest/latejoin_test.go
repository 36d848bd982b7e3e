package loadtest

import (
	"strings"
	"testing"
	"time"
)

// A rehearsal whose late buyers were all refused line_full did not
// rehearse late buyers: its check fails and says what to change.
func TestLateJoinCheck(t *testing.T) {
	type kind int
	const (
		drawn kind = iota
		full
		joined
	)
	crowdOf := func(kinds ...kind) *crowd {
		c := newCrowd("t", Shard{}, len(kinds), 0, 0, time.Now(), time.Now())
		for i, k := range kinds {
			b := &c.buyers[i]
			switch k {
			case drawn:
				b.flags |= fTicket | fDrawn
			case full:
				b.flags |= fLate
				b.outcome = c.names.code("join_410")
			case joined:
				b.flags |= fLate | fTicket
			}
		}
		return c
	}
	for _, c := range []struct {
		name  string
		crowd *crowd
		ok    bool
		says  string
	}{
		{"no late buyers", crowdOf(drawn), true, "no --late-buyers"},
		{"every late buyer refused", crowdOf(drawn, full, full), false, "none of the 2 late buyers joined (2 refused 410 line_full): the line held 1000 tickets, its line_limit is 1000"},
		{"some joined", crowdOf(drawn, full, joined), true, "1 of 2 late buyers joined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := lateJoinCheck(c.crowd, 1000, 1000)
			if got.Passed != c.ok || !strings.Contains(got.Detail, c.says) {
				t.Errorf("%+v", got)
			}
		})
	}
}
