// Package drain moves each sale's admitted orders from the ledger into a
// backend (a consumer.Backend) at the pace the backend takes, exactly
// once per order in effect.
//
// It owns: one durable pull consumer per sale (ledger.DrainConsumer,
// explicit acks), found and followed by a discovery loop (discover.go);
// the workers that fetch batches and take them through the backend
// (fetch.go), under a bound on the backend calls under way and the
// backend's pace (pace.go, limiter's buckets); the backend call, the
// record of a batch's decisions in the decisions stream
// (internal/orderstatus) and the acks (commit.go); retries with backoff
// and the backend's health (retry.go); the dead-letter stream SLUICE_DEAD
// (deadletter.go); an order's cancellation, in the backend and then in
// the decisions stream (cancel.go); its metrics (metrics.go).
//
// It never: answers a buyer, decides an order itself (the backend does),
// opens or chooses a backend (its owner does: internal/serve, by the
// table of backend kinds), changes a sale, or drops an order: every
// order fetched is acked, terminated, dead-lettered, or left unacked for
// JetStream to redeliver.
//
// The invariants it keeps:
//
//   - Ack only after commit: a batch's decisions are recorded after the
//     backend committed them and before any ack (Ack for a confirmation,
//     Term for a final rejection). A crash in between redelivers the
//     orders, and the backend, idempotent by order id, answers as before.
//   - One round trip of acks per batch: they are sent without waiting and
//     closed by one double ack (AckSync), whose answer confirms them all,
//     since JetStream processes a consumer's acks from one connection in
//     order. A lost ack is a redelivery, which is harmless.
//   - Bounded: no more than Workers backend calls at once, whatever the
//     sales or the backlog; each sale's consumer holds at most
//     2 × Workers × Batch unacknowledged orders (each worker slot keeps a
//     second batch fetched or acked while the first is in the backend).
//   - Paced: a process's BackendRate and a sale's backend_rate are token
//     buckets of one token per order; a batch is never larger than a
//     twentieth of a second of the pace, and a backend that makes one call
//     per order (consumer.PacedEachCall) waits for the pace call by call.
//   - A batch the backend fails is retried order by order, so one poisoned
//     order cannot hold the others back; a failing order is redelivered
//     with exponential backoff and jitter, and dead-lettered (published to
//     SLUICE_DEAD with its reason and delivery count, recorded as failed,
//     then terminated) once MaxDeliver of its attempts failed while the
//     backend was deciding other orders. An outage of the whole backend
//     (consumer.ErrUnavailable, or nothing decided lately) pauses the
//     workers and dead-letters nothing.
//   - A batch in the backend is kept in progress every third of AckWait,
//     so it is not handed to another worker while it waits its turn.
//   - Stop lets the batches under way finish (committed, recorded, acked);
//     a batch still waiting for the pace is given back at once, and one
//     still under way when Stop's context ends is left unacked, to be
//     redelivered.
package drain
