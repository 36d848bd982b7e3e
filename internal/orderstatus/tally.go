package orderstatus

// Tally counts one sale's decisions as every gate's Tracker does, from
// the records alone: the first outcome of an order stands, and a cancel
// turns a confirmed order into one that gave its slot back. The public
// line log's check counts the stock given back with it. The zero value
// is an empty tally; it does no I/O and is not safe for concurrent use.
type Tally struct{ s saleDecisions }

// Apply applies one decision of the sale, in the decisions stream's
// order.
func (t *Tally) Apply(d Decision) {
	if t.s.other == nil {
		t.s.other = make(map[uint64]Status)
	}
	t.s.apply(d)
}

// Released is how many of the sale's orders gave their slot back
// (Status.Releases): the sale's stream takes its stock and overbook
// plus these.
func (t *Tally) Released() int64 { return t.s.released }
