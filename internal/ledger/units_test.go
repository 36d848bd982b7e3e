package ledger

import "testing"

// TestAckStreamSeq: the follower reads a message's stream sequence from
// its reply subject in both forms the server sends (as
// jetstream.Msg.Metadata reads them), and says so when it cannot, so
// that the follower asks Metadata instead.
func TestAckStreamSeq(t *testing.T) {
	for _, c := range []struct {
		reply string
		seq   uint64
		ok    bool
	}{
		{"$JS.ACK.SALE_drop.c1.1.42.7.1733580000000000000.3", 42, true},
		{"$JS.ACK._.ACCHASH.SALE_drop.c1.1.42.7.1733580000000000000.3", 42, true},
		{"$JS.ACK.hub.ACCHASH.SALE_drop.c1.2.9001.7.1733580000000000000.0.rAnD0m", 9001, true},
		{"$JS.ACK.SALE_drop.c1.1.x.7.1733580000000000000.3", 0, false},
		{"$JS.ACK.SALE_drop.c1.1.42.7.1733580000000000000", 0, false},
		{"$JS.NAK.SALE_drop.c1.1.42.7.1733580000000000000.3", 0, false},
		{"", 0, false},
	} {
		seq, ok := ackStreamSeq(c.reply)
		if seq != c.seq || ok != c.ok {
			t.Errorf("ackStreamSeq(%q) = %d, %v; want %d, %v", c.reply, seq, ok, c.seq, c.ok)
		}
	}
}
