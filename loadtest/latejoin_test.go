package loadtest

import (
	"strings"
	"testing"
)

// A rehearsal whose late buyers were all refused line_full did not
// rehearse late buyers: its check fails and says what to change.
func TestLateJoinCheck(t *testing.T) {
	drawn := &roomBuyer{id: "a", ticket: "t1", drawn: true}
	full := func() *roomBuyer { return &roomBuyer{id: "l", late: true, outcome: "join_410"} }
	joined := &roomBuyer{id: "j", late: true, ticket: "t2"}
	for _, c := range []struct {
		name   string
		buyers []*roomBuyer
		ok     bool
		says   string
	}{
		{"no late buyers", []*roomBuyer{drawn}, true, "no --late-buyers"},
		{"every late buyer refused", []*roomBuyer{drawn, full(), full()}, false, "none of the 2 late buyers joined (2 refused 410 line_full): the line held 1000 tickets, its line_limit is 1000"},
		{"some joined", []*roomBuyer{drawn, full(), joined}, true, "1 of 2 late buyers joined"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := lateJoinCheck(c.buyers, 1000, 1000)
			if got.Passed != c.ok || !strings.Contains(got.Detail, c.says) {
				t.Errorf("%+v", got)
			}
		})
	}
}
