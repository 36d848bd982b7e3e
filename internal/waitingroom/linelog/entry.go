package linelog

import (
	"encoding/hex"
	"time"
)

// Kind names what a record of the log is.
type Kind string

// The records of the line's durable streams, as the log publishes them.
const (
	// KindCommitment opens every log: SHA-256 of the draw's seed, made
	// when the room was first turned on (At) and public before the start.
	KindCommitment Kind = "commitment"
	// KindJoin is a ticket joining the line (line stream); Position is
	// set for a ticket that joined after the draw (before it, the draw
	// gives it one).
	KindJoin Kind = "join"
	// KindDraw is the draw mark (line stream): the tickets joined before
	// it are drawn, Drawn of them, in the order Seed gives them.
	KindDraw Kind = "draw"
	// KindRejoin puts a ticket whose turn at From lapsed at the back of
	// the line, at Position (line stream); without Position, the line
	// took nothing of it.
	KindRejoin Kind = "rejoin"
	// KindUnread is a record the line could not read, which changes
	// nothing (LineSeq or PaceSeq says which).
	KindUnread Kind = "unread"
	// KindStep is a step of the pace (pace stream): let in through
	// Through, offer through Offered; its passes live TTLMillis, its
	// turns are claimed within WindowMillis. State is the line after it.
	KindStep Kind = "step"
	// KindCover places the records of the other streams (pace stream):
	// it carries only Covers, Limit and the graces.
	KindCover Kind = "cover"
	// KindClaim is a claim of the turn at Position (pace stream);
	// Counted says it made the turn claimed.
	KindClaim Kind = "claim"
	// KindUse is a ticket's pass recorded as used (pace stream).
	KindUse Kind = "use"
	// KindRoom turns the room off or on (pace stream).
	KindRoom Kind = "room"
	// KindStock is a change of the sale's stock or overbook (pace
	// stream), recorded before the sale takes it.
	KindStock Kind = "stock"
	// KindOrder is an order in the sale's ledger (OrderSeq, its sequence
	// there), placed with the pass of Ticket or, without Ticket, with
	// none.
	KindOrder Kind = "order"
	// KindDecision is what the drain decided for orders of the sale
	// (decisions stream): Rejected, Failed and Cancelled orders give
	// their item back.
	KindDecision Kind = "decision"
)

// The records the log derives from those above, deterministically: the
// same records give the same derived ones, on every gate and in every
// check.
const (
	// KindOffer: the turn at Position is offered to Ticket, to be
	// claimed by ClaimBy (none: no claim needed).
	KindOffer Kind = "offer"
	// KindGrant: Ticket's turn at Position is claimed and let in: its
	// pass lives until Expires.
	KindGrant Kind = "grant"
	// KindLapse: the turn at Position was not claimed by its ClaimBy
	// (At).
	KindLapse Kind = "lapse"
	// KindExpire: the pass of Ticket's turn at Position expired (At)
	// unused.
	KindExpire Kind = "expire"
)

// Derived says whether records of this kind are derived from the
// others rather than read from a stream.
func (k Kind) Derived() bool {
	return k == KindOffer || k == KindGrant || k == KindLapse || k == KindExpire
}

// Entry is one record of the public line log. Which fields a record has
// depends on its Kind (docs/line-audit.md lists them); tickets appear
// only by their hash, SHA-256 of the ticket id in hex, as the draw
// publishes them, and no buyer id, ticket id or pass ever does.
type Entry struct {
	// Seq numbers the records from 1, without gaps.
	Seq  int64     `json:"seq"`
	At   time.Time `json:"at"`
	Kind Kind      `json:"kind"`
	// The record's sequence in its stream.
	LineSeq     uint64 `json:"line_seq,omitempty"`
	PaceSeq     uint64 `json:"pace_seq,omitempty"`
	OrderSeq    uint64 `json:"order_seq,omitempty"`
	DecisionSeq uint64 `json:"decision_seq,omitempty"`

	Ticket   string `json:"ticket,omitempty"`
	Position int64  `json:"position,omitempty"`
	From     int64  `json:"from,omitempty"`

	Commitment string `json:"commitment,omitempty"`
	Seed       string `json:"seed,omitempty"`
	Drawn      *int64 `json:"drawn,omitempty"`
	// PollRate and Front are the draw mark's opening (line.Opening): the
	// drawn tickets' looks, from which a turn's claim_by follows.
	PollRate float64 `json:"poll_rate,omitempty"`
	Front    int64   `json:"front,omitempty"`

	Through      int64 `json:"through,omitempty"`
	Offered      int64 `json:"offered,omitempty"`
	TTLMillis    int64 `json:"ttl_ms,omitempty"`
	WindowMillis int64 `json:"window_ms,omitempty"`

	// Covers says which records of the other streams the writer of a
	// step or cover record had read: they come before it in the log.
	Covers *Covers `json:"covers,omitempty"`
	// Limit is how many orders the sale's ledger took in all when the
	// writer read it (stock + overbook + given back).
	Limit            *int64 `json:"limit,omitempty"`
	PassGraceMillis  int64  `json:"pass_grace_ms,omitempty"`
	ClaimGraceMillis int64  `json:"claim_grace_ms,omitempty"`
	State            *State `json:"state,omitempty"`

	Open    *bool  `json:"open,omitempty"`
	Counted *bool  `json:"counted,omitempty"`
	Stock   *int64 `json:"stock,omitempty"`
	// Overbook is the orders the sale takes beyond its stock.
	Overbook *int64 `json:"overbook,omitempty"`

	ClaimBy time.Time `json:"claim_by,omitzero"`
	Expires time.Time `json:"expires,omitzero"`

	Confirmed []uint64  `json:"confirmed,omitempty"`
	Rejected  []Outcome `json:"rejected,omitempty"`
	Failed    []Outcome `json:"failed,omitempty"`
	Cancelled []Outcome `json:"cancelled,omitempty"`
}

// Covers are the last records of the line, the ledger and the decisions
// that the writer of a step or cover record had read.
type Covers struct {
	LineSeq     uint64 `json:"line_seq"`
	OrderSeq    uint64 `json:"order_seq"`
	DecisionSeq uint64 `json:"decision_seq"`
}

// State is the line right after a step, at its time.
type State struct {
	LetIn       int64 `json:"let_in"`
	Offered     int64 `json:"offered"`
	Outstanding int64 `json:"passes_outstanding"`
	// Claimable are the turns let in that may still be claimed.
	Claimable int64 `json:"claimable"`
	// Held is what the line holds of the stock: the passes outstanding
	// (and expired within the pass grace), and the claimable turns.
	Held   int64 `json:"held"`
	Orders int64 `json:"orders"`
	// StockLeft is Limit less Orders (absent when the step carries no
	// limit).
	StockLeft *int64 `json:"stock_left,omitempty"`
}

// Outcome is an order the drain refused or gave up on, or the shop
// cancelled, and why.
type Outcome struct {
	OrderSeq uint64 `json:"order_seq"`
	Reason   string `json:"reason,omitempty"`
}

// Raw is the record as read from its stream: the fields the log derives
// (a position, the draw's count, a step's State, a claim's Counted) and
// Seq left out. Replay fills them in.
func (e Entry) Raw() Entry {
	e.Seq = 0
	switch e.Kind {
	case KindJoin:
		e.Position = 0
	case KindDraw:
		e.Drawn = nil
	case KindRejoin:
		e.From, e.Position = 0, 0
	case KindStep:
		e.State = nil
	case KindClaim:
		e.Counted = nil
	}
	return e
}

// Hash reads a ticket's hash as the log writes it: 64 hex digits.
func Hash(s string) ([32]byte, bool) {
	var h [32]byte
	if len(s) != 64 {
		return h, false
	}
	_, err := hex.Decode(h[:], []byte(s))
	return h, err == nil && hex.EncodeToString(h[:]) == s
}

// HashString writes a ticket's hash as the log does.
func HashString(h [32]byte) string { return hex.EncodeToString(h[:]) }

func ptr[T any](v T) *T { return &v }
