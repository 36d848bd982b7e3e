// Package ledger keeps a sale's admitted orders in a JetStream stream, one
// stream per sale.
//
// The stream is the admission ledger and the only arbiter of stock: it has
// MaxMsgs = stock + overbooking + released (orders that gave their slot
// back, counted from the decisions stream) with DiscardNew, so JetStream
// refuses the order that would oversell, atomically for every gate sharing
// it, and one subject per buyer (per round, after a release) with
// MaxMsgsPerSubject and DiscardNewPerSubject, so the broker refuses a
// buyer's extra orders. Messages are never removed: the
// retention is by limits, not work queue, so the stream always holds every
// order ever admitted and the drain tracks its progress with a durable
// consumer.
//
// A sale's configuration lives in its stream's metadata, so every gate that
// shares the JetStream domain sees the same sales without another store.
//
// # A sale with variants
//
// A sale may sell variants (sizes, colours), each with its own stock, and
// count per_buyer across them. Its orders stay on the buyers' subjects, so
// the broker keeps per_buyer across variants as above; the stream has no
// MaxMsgs. Each variant's stock is kept by units: variant v has units
// 1, 2, … and every order of v takes one, named by the order's
// Nats-Msg-Id "u|v|k". The invariants, and where they are kept:
//
//  1. A unit is taken once. JetStream stores one message per id in the
//     duplicate window (streams.VariantSaleConfig: a week at least), so
//     of two orders (or an order and a burn) naming unit k, on any gates,
//     one is stored and the other is answered duplicate; it then tries
//     another unit (placeVariant). Past the window every gate knows the
//     unit taken from the stream itself (units.go reads every order's id
//     back), and takes only units it has not seen taken.
//  2. Variant v has hi(v) = units(v) + released(v) units, and an order
//     takes a unit of 1..hi(v) only. units(v) is in the stream's
//     metadata (sluice.units) and only grows; released(v) counts the
//     variant's orders that gave their item back, from the durable
//     decisions (the drain records each order's variant). Both only grow,
//     so a gate that read them before a change issues fewer units, never
//     more: a stale gate cannot oversell.
//  3. units(v) - burns(v) = stock(v) after every change of the stock.
//     A raise adds units. A lowering cannot take units back (a stale gate
//     may still sell them), so it burns as many as the stock falls: a
//     burn takes a unit nothing holds, as an order would (its id, an
//     empty message on sluice.stock.<sale>.<v>.<k>), first among 1..hi(v)
//     and, when the variant sold more than the new stock, among the units
//     to come, so that released orders do not reopen it before it is
//     under its stock again (fitUnits). Burns are stored before the new
//     configuration: a change cut short (a kill -9) leaves a stock no
//     higher than either, and the next change burns only what is missing.
//
// From 1-3: the orders of v that hold an item, admitted(v) - released(v),
// never exceed stock(v) + (what a lowering found sold already), whatever
// the gates, crashes and restarts. An order is one publish: it holds its
// unit and its buyer's place together, or neither; there is no claim to
// undo after a crash. A publish whose outcome is unknown (a timeout)
// keeps its unit reserved on its gate until the stream shows it; another
// gate that tries the unit is answered duplicate if it was stored.
// Cancels and rejected orders give the item back to their own variant
// through released(v). What is left of v, Remaining, is hi(v) less the
// units taken, less the burns beyond hi(v); the pace of a waiting room
// counts the sum over the variants (StockLeft), each at most its own.
package ledger
