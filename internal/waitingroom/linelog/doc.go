// Package linelog is the public line log of a waiting room: every record
// that decides a sale's line, in one order, numbered without gaps,
// tickets only by their hash, so that anyone can check from public data
// alone that turns went in draw order and never past the stock. It is
// pure: no I/O, no clock. The gates write a sale's log with Replay from
// the durable records (package waitingroom reads them); `sluice line
// verify` checks one with Verify; docs/line-audit.md documents the
// format and the checks for whoever writes their own.
//
// # The log's one order
//
// The line is applied from four streams: the sale's line (tickets, the
// draw mark, returns to the back), the pace (steps, claims, uses, room
// marks, stock changes, covers), the sale's ledger (orders) and the
// decisions. A gate reads them in whatever interleaving its consumers
// deliver; the line's state does not depend on it (line/doc.go,
// invariant 1), but a log must have one order, the same on every gate
// and after every restart, and grow only at its end.
//
// The pace stream is the backbone: its records keep their own order
// (each step a compare-and-set on the last). A step, and a cover record (a
// record of the pace that moves nothing, written by the pacer when
// records wait to be placed), carries Covers: the last line record its
// writer's book had applied, the ledger's last order and the sale's last
// decision it read. Every record of the other streams goes right before
// the first step or cover record that covers it (the line's, then the
// decisions', then the orders'), so what a step was computed from comes
// before it. That order is a function of the records alone; a record of
// another stream enters the log when a record of the pace covers it,
// and no record ever comes between two already written. Each stream's
// own order is kept and none of its records is left out (the line's and
// the ledger's sequences have no gaps; a covering record names the last
// decision).
//
// # What is derived
//
// Offers, grants, lapses and expiries, a ticket's position, a step's
// State and a claim's Counted are derived by Replay from the records
// before them, with the line package's Book: an offer and a grant right
// after the record that makes them, a lapse or an expiry once a record
// of the pace is dated past it (plus the grace the pace used). A read of
// the log never changes what it says.
package linelog
