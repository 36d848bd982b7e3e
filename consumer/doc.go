// Package consumer is the contract between sluice's drain and a backend,
// the store an admitted order ends up in: the Backend interface, the
// optional capabilities a backend may have (EachCallBounded,
// PacedEachCall, Canceller), the Order a backend receives and the Result
// it answers, the errors a backend returns (ErrUnavailable), and the
// helpers an implementation needs (BySale, PaceOrder, the rejection
// reasons).
//
// The implementations are its subpackages: consumer/sqlite (embedded),
// consumer/postgres and consumer/httpbackend (an existing purchase
// endpoint). The drain that feeds them (internal/drain) and the table of
// backend kinds --backend names (internal/serve) are not here: this
// package imports nothing of sluice's own, and a new kind of backend is a
// package implementing Backend and one row in that table.
//
// What a backend promises: Commit is idempotent, since redelivery is
// normal (a worker or process can die between the commit and the ack).
// The order id is the key: an order committed before gets the same result
// again and changes nothing. Stock is handed out in ledger order (Seq)
// and never below zero; a buyer holds at most PerBuyer orders of a sale.
package consumer
