package waitingroom

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"sluice/internal/orderstatus"
	"sluice/internal/waitingroom/linelog"
)

// A decision's reasons are free text (a shop's backend answers what it
// likes; a failure is the error the drain met, with the backend's
// address): the public log publishes a few words in their place, and
// never the buyer, while keeping what the check needs (sold_out gives
// nothing back).
func TestTheLogPublishesNoReasonOfTheBackends(t *testing.T) {
	d := orderstatus.Decision{Sale: "drop", At: time.Now(), Confirmed: []uint64{1},
		Rejected: []orderstatus.Outcome{{Seq: 2, Reason: "card declined for alice@example.com", Buyer: "alice@example.com"},
			{Seq: 3, Reason: "sold_out", Buyer: "bob"}, {Seq: 4, Reason: "already_ordered", Buyer: "carol"}},
		Failed:    []orderstatus.Outcome{{Seq: 5, Reason: `Post "http://10.1.2.3:9000/orders": dial tcp 10.1.2.3:9000: connection refused`, Buyer: "dave"}},
		Cancelled: []orderstatus.Outcome{{Seq: 6, Reason: "refund to erin@example.com", Buyer: "erin"}}}
	data, _ := json.Marshal(d)
	e := decisionEntry(data, time.Now(), 9)
	b, _ := json.Marshal(e)
	for _, secret := range []string{"alice", "bob", "carol", "dave", "erin", "10.1.2.3", "declined", "refund", "buyer"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the log's decision says %q: %s", secret, b)
		}
	}
	want := linelog.Entry{Rejected: []linelog.Outcome{{OrderSeq: 2, Reason: "rejected"}, {OrderSeq: 3, Reason: "sold_out"}, {OrderSeq: 4, Reason: "already_ordered"}},
		Failed: []linelog.Outcome{{OrderSeq: 5, Reason: "failed"}}, Cancelled: []linelog.Outcome{{OrderSeq: 6, Reason: "cancelled"}}}
	got, _ := json.Marshal(linelog.Entry{Rejected: e.Rejected, Failed: e.Failed, Cancelled: e.Cancelled})
	if w, _ := json.Marshal(want); string(got) != string(w) {
		t.Errorf("the decision's outcomes: %s\nwant %s", got, w)
	}
	if e.Kind != linelog.KindDecision || e.DecisionSeq != 9 || len(e.Confirmed) != 1 {
		t.Errorf("the decision: %s", b)
	}
}
