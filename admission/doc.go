// Package admission is the gate's HTTP API and its admit decision.
//
// An order request is checked cheapest first: unknown sale, sale window,
// the sold-out flag (answered without reading the body), the per-address
// and per-sale rate limits, the queue-depth bound, then the body and the
// per-buyer limit, and only then published to the sale's JetStream stream.
// The answer 202 is written after the PubAck, never before. Everything the
// checks read is cached in memory and refreshed in the background by the
// caller (UpdateSales), so no request waits on JetStream unless it is
// being admitted. A Gate starts no goroutines.
//
// Where things are: gate.go builds a Gate whole from its Deps and follows
// the sales; orders.go is the admit decision, phase by phase; query.go
// the reads (an order, a sale); admin.go and cancel.go the admin API;
// identity.go and decode.go who the buyer is and what the body says;
// wait.go a request held for its order's decision (Prefer: wait); the
// waiting room's endpoints are room_*.go (room.go says which is which).
//
// Its exported API hands out sluice's internal types on purpose: the
// sale states and orders of internal/ledger, the waiting room's records
// of internal/waitingroom. A Gate is built by sluice's own wiring
// (internal/serve) from sluice's own ledger, which keeps the promises the
// gate answers for (stock, one order per buyer, the line's turns); it is
// not meant to be built of something outside this module. What a user of
// the gate sees is its HTTP API (openapi.yaml, OpenAPI) and its metrics.
package admission
