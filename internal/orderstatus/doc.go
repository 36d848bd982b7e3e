// Package orderstatus carries what the drain decided for each order to
// every gate.
//
// The drain publishes one Decision per batch to the SLUICE_DECISIONS
// stream (subject sluice.decided.<sale>) before it acknowledges the
// batch's orders. Each gate follows that stream with an ordered consumer
// and keeps, per sale, a bitset of confirmed sequences and a small map of
// rejected and failed ones; answering an order's status or a sale's
// confirmed count is then a memory read, with no JetStream round trip,
// however many buyers poll. Memory is bounded by the sales' capacity: one
// bit per admitted order plus an entry per rejection.
//
// A decision recorded twice (a batch redelivered after a crash between
// the record and the acks) changes nothing: the first outcome of a
// sequence stands and the count is the size of the set.
package orderstatus
