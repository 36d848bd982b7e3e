// Package consumer drains each sale's JetStream stream into a backend at
// the pace the backend takes, exactly once per order in effect.
//
// Each sale has a durable pull consumer with explicit acks. Workers fetch
// batches, hand each batch to the Backend in one call (one transaction for
// the SQL backends), record the batch's decisions (one message, see
// internal/orderstatus), and only then acknowledge: Ack for a
// confirmation, Term for a final rejection, sent without waiting and
// closed by one double ack (AckSync) whose answer confirms them all, since
// JetStream processes a consumer's acks from one connection in order.
// Each worker slot keeps two batches under way, so that one is fetched
// or acked while the other is in the backend. A batch the backend fails
// is retried order by order so that one poisoned order cannot hold
// the others back; a failing order is redelivered with exponential
// backoff and jitter, and once MaxDeliver of its attempts failed while the
// backend was deciding other orders, it is published to the dead-letter
// stream with its reason and delivery count and terminated. An outage of
// the whole backend pauses the workers instead and dead-letters nothing.
//
// Redelivery is normal (a worker or process can die between the commit
// and the ack), so backends must be idempotent: the order id is the key.
// No more than Workers backend calls run at once, whatever the number of
// sales or the backlog.
package consumer
