// Package admission is the gate's HTTP API and its admit decision.
//
// An order request is checked cheapest first: unknown sale, sale window,
// the sold-out flag (answered without reading the body), the per-address
// and per-sale rate limits, the queue-depth bound, then the body and the
// per-buyer limit, and only then published to the sale's JetStream stream.
// The answer 202 is written after the PubAck, never before. Everything the
// checks read is cached in memory and refreshed in the background by the
// caller (UpdateSales), so no request waits on JetStream unless it is
// being admitted.
package admission
