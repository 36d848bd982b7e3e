// Package line holds the pure parts of a sale's waiting room: the
// verifiable draw that orders the tickets taken before the start, the
// positions, the pace at which the line lets buyers in, and the passes
// that admit them. It does no I/O and reads no clock: time is an
// argument, as in golang.org/x/time/rate, so that every gate computes
// the same answers from the same durable facts.
//
// # The line's promises
//
// A ticket's holder is promised a place, and a pass that is theirs when
// the place comes. The line keeps that promise by these invariants; each
// is kept where the comment says and checked by a test.
//
//  1. The line is a function of its durable records. Book applies the
//     line stream's records (tickets, the draw mark, returns to the
//     back after a lapse) and the pace
//     stream's (advances, claims, uses) in whatever interleaving the two
//     streams are read in, and any record twice; Book.State(now, grace)
//     and Book.Lookup then depend on those records and now alone. Every
//     gate, every restart, every replay and a room turned off and on
//     compute the same positions, offers, claims, lapses, returns, let-in, used,
//     outstanding and expired passes. (Book; TestBookIsAFunctionOfItsRecords
//     compares it with a naive model over random interleavings, replays
//     and reads.)
//  2. A read never writes. No query moves a mark: expiry and lapse are
//     functions of now, not a state advanced by whoever looked last.
//     (Book.State, Book.Ahead) Claims are written by a named action of
//     the poll, one stored record per claimed turn. (admission's
//     claimTurn)
//  3. Positions are let in in order: let-in is a prefix 1..N that never
//     shrinks, and so is the offered prefix 1..M, M >= N. A claim
//     counts when it is recorded after its turn's offer and stored
//     before its window closed. (Book.Advance, Book.Claim, Pace.Next)
//  4. A pass's expiry is fixed by records: the later of its grant (the
//     step that let it in) and its claim, plus the pass_ttl written in
//     that step, so a later change of pass_ttl or claim_window changes
//     no turn already given. (Turn.PassExpires)
//  5. Orders in the ledger plus what the turns let in hold never exceed
//     what the sale takes (stock + overbook + released), so whoever holds
//     a valid pass finds an item: nobody holding a valid pass is refused
//     for stock while someone behind them buys. A pass is held until its
//     expiry plus a grace (the publish timeout and clock skew: an order
//     checked just before the expiry may still be on its way), a turn let
//     in and unclaimed until its window closes plus that grace (a claim
//     may be on its way); a lapsed turn holds nothing. The pace reads
//     the line first and the stock after, so that no order is counted
//     neither as held nor as sold. (Pace.Next, admission's paceLine;
//     TestLinePromisesUnderFaults checks it against the records after
//     every fault.)
//  6. Whoever comes back when told never lapses, and the crowd's polls
//     stay within what the gates answer. A drawn line opens at its draw
//     mark over drawn/poll_rate seconds, front of the line first: a drawn
//     ticket's first look is its slot, its draw key's share of the
//     opening, which the gates know and tell before the draw; then it
//     looks once a period: a short one at the front of the line (four
//     times the sale's capacity, written in the mark), a long one behind
//     it (Opening, LookPeriod, BackPeriod). A turn's claim window
//     starts at the first of its holder's looks at or after its offer
//     (Turn.ClaimFrom), never before the holder was told to come back,
//     so a drawn ticket polled at its looks cannot miss its turn, and the
//     line's polls come at the gates' rate whatever its length. Every
//     other state that can still change (a claimed turn waiting for its
//     pass, a pass, a ticket without looks: joined after the draw, put
//     at the back) is polled within a third of pass_ttl, and a turn
//     without looks that may be offered within a third of the claim
//     window (the waiting page holds a long poll instead), so a turn, and
//     stock given back, reaches its holder in time. (Book.lookAfter,
//     admission's viewTicket; TestOpeningLooks)
//  7. Stock the line holds stays held whatever the room's state. A room
//     turned off is a mark in the pace stream, recorded before the sale
//     says so (ledger's EnsureSale): the steps recorded after it move
//     nothing until a mark turns it on (Book.Mark), so the turns and
//     passes given before it are all the line holds, and what they hold
//     (State.Held) only falls as passes are used or expire and turns
//     lapse. An order without a pass then takes only stock beyond Held,
//     by a compare-and-set on the sale's stream (ledger's PlaceBeyond,
//     admission's placeBeside); a pass still admits its holder, and a
//     ticket still answers its state. (TestBookRoomOffKeepsItsHolds;
//     the fault test turns the room off while orders without a pass
//     arrive.)
package line
