package waitingroom

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"sluice/internal/ledger"
	"sluice/internal/streams"
	"sluice/internal/waitingroom/line"
	"sluice/internal/waitingroom/linelog"
)

// A waiting room's records. Each sale with a line has a line stream
// (streams.LineConfig): one subject per buyer holding that buyer's ticket,
// one per buyer for a return to the back after a lapse, and the draw
// mark, whose sequence seals the draw: the tickets before it are drawn.
// The pace stream, shared by every sale, holds each room's steps ("let in
// through position N, offer through M", each a compare-and-set on the
// last), the claims of turns, the passes used and the marks that turn a
// room off and on; and, for the public line log (linelog), the changes of
// the sale's stock and the cover records, which move nothing (a step and
// a cover record say what their writer had read: Cover). The keys bucket holds each sale's seed and pass
// secret, made once when its room is first turned on. Every gate applies
// the same records in the same order to its line.Book (Room, ApplyPace).

// LineBuyerSubject is the subject of a buyer's ticket.
func LineBuyerSubject(sale, buyer string) string {
	return streams.LineSubjectPrefix(sale) + "b." + base64.RawURLEncoding.EncodeToString([]byte(buyer))
}

// LineRejoinSubject is the subject of a buyer's return to the back of
// the line after their turn lapsed: at most one message, so once.
func LineRejoinSubject(sale, buyer string) string {
	return streams.LineSubjectPrefix(sale) + "r." + base64.RawURLEncoding.EncodeToString([]byte(buyer))
}

// LineDrawSubject is the subject of the draw mark.
func LineDrawSubject(sale string) string { return streams.LineSubjectPrefix(sale) + "draw" }

// PaceLetInSubject, PaceClaimSubject, PaceUsedSubject and
// PaceRoomSubject are a sale's subjects in the pace stream: its steps,
// claims, passes used and the marks that turn its room off and on.
// PaceStockSubject holds the changes of its stock, PaceCoverSubject
// the records that place the other streams' records in the public
// line log (linelog); neither changes the line.
func PaceLetInSubject(sale string) string { return streams.PaceSubjectPrefix(sale) + "letin" }
func PaceClaimSubject(sale string) string { return streams.PaceSubjectPrefix(sale) + "claim" }
func PaceUsedSubject(sale string) string  { return streams.PaceSubjectPrefix(sale) + "used" }
func PaceRoomSubject(sale string) string  { return streams.PaceSubjectPrefix(sale) + "room" }
func PaceStockSubject(sale string) string { return streams.PaceSubjectPrefix(sale) + "stock" }
func PaceCoverSubject(sale string) string { return streams.PaceSubjectPrefix(sale) + "cover" }

// PaceSubjects are a sale's subjects in the pace stream.
func PaceSubjects(sale string) []string {
	return []string{PaceLetInSubject(sale), PaceClaimSubject(sale), PaceUsedSubject(sale), PaceRoomSubject(sale),
		PaceStockSubject(sale), PaceCoverSubject(sale)}
}

// ApplyPace applies a record of the sale's pace (a message of the pace
// stream on subject, stored at at with sequence seq) to its book: what
// every gate's room does with each, and what a recomputation of the
// line from its records does. A record it cannot read changes nothing.
func ApplyPace(b *line.Book, sale, subject string, data []byte, at time.Time, seq uint64) {
	switch subject {
	case PaceLetInSubject(sale):
		if a, ok := advanceOf(data, at, seq); ok {
			b.Advance(a)
		}
	case PaceClaimSubject(sale):
		var c claimRecord
		if json.Unmarshal(data, &c) == nil {
			if key, ok := line.KeyOf(c.Ticket); ok {
				b.Claim(key, c.Position, at, seq)
			}
		}
	case PaceUsedSubject(sale):
		if key, ok := line.KeyOf(strings.TrimSpace(string(data))); ok {
			b.Use(key)
		}
	case PaceRoomSubject(sale):
		if open, ok := RoomMarkOf(data); ok {
			b.Mark(open, seq)
		}
	}
}

// drawRecord is the draw mark: the tickets before it are drawn, and the
// line opens at PollRate with its Front (line.Opening); a mark without
// a rate (written before openings) opens nothing.
type drawRecord struct {
	Draw     bool    `json:"draw"`
	PollRate float64 `json:"poll_rate,omitempty"`
	// Front is how many of the drawn positions look more often (the
	// front of the line, line.Opening); a mark without it: all of them.
	Front int64 `json:"front,omitempty"`
}

// ApplyLine applies a record of the sale's line stream (a message on
// subject, stored at at with sequence seq) to its book: a ticket, a
// return to the back, the draw mark. A record it cannot read is skipped
// (false), so that the sequences after it still apply.
func ApplyLine(b *line.Book, sale, subject string, data []byte, at time.Time, seq uint64) bool {
	switch {
	case subject == LineDrawSubject(sale):
		var d drawRecord
		_ = json.Unmarshal(data, &d) // a mark that says nothing more still seals
		b.SealBefore(seq, line.Opening{At: at, Rate: d.PollRate, Front: d.Front})
		b.Skip(seq)
		return true
	case strings.HasPrefix(subject, streams.LineSubjectPrefix(sale)+"r."):
		if key, ok := rejoinOf(data); ok {
			b.Rejoin(key, seq)
			return true
		}
	default:
		t, ok := ticketOf(data)
		key := line.TicketKey{}
		if ok {
			key, ok = line.KeyOf(t.Ticket)
		}
		if ok {
			b.Add(key, t.Buyer, seq, at)
			return true
		}
	}
	b.Skip(seq)
	return false
}

// roomRecord turns a sale's room off (Open false) or on (line.Book.Mark).
type roomRecord struct {
	Open bool `json:"open"`
}

// RoomMarkOf reads a room mark.
func RoomMarkOf(data []byte) (open, ok bool) {
	var r struct {
		Open *bool `json:"open"`
	}
	if json.Unmarshal(data, &r) != nil || r.Open == nil {
		return false, false
	}
	return *r.Open, true
}

// ticketRecord is a ticket as the line stream stores it.
type ticketRecord struct {
	Ticket string `json:"ticket"`
	Buyer  string `json:"buyer"`
}

// ticketOf reads a ticket record. Records are written by json.Marshal of
// a ticketRecord, so the common one is read without reflection (a gate
// replays a million of them when it starts); anything else, escapes
// included, goes through encoding/json.
func ticketOf(data []byte) (ticketRecord, bool) {
	const head, mid = `{"ticket":"`, `","buyer":"`
	if n := len(head) + line.TicketIDLen + len(mid); len(data) > n+2 &&
		string(data[:len(head)]) == head && string(data[len(head)+line.TicketIDLen:n]) == mid &&
		string(data[len(data)-2:]) == `"}` && plainJSON(data[len(head):n-len(mid)]) && plainJSON(data[n:len(data)-2]) {
		return ticketRecord{Ticket: string(data[len(head) : len(head)+line.TicketIDLen]), Buyer: string(data[n : len(data)-2])}, true
	}
	var r ticketRecord
	err := json.Unmarshal(data, &r)
	return r, err == nil
}

// plainJSON says whether b is a JSON string's contents that read as they
// are: printable ASCII without quotes or escapes.
func plainJSON(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// advanceRecord is a step of the pace: let in through Through, offer
// through Offered. TTLMillis is the pass lifetime the step's passes were
// given and WindowMillis the claim window of the turns it offered: kept
// in the record so that every gate, and every replay after a change of
// a setting, dates them alike. A record without TTLMillis (written
// before it was kept) is read with ledger.DefaultPassTTL; one without Offered
// offers what it lets in, and one without WindowMillis needs no claim
// (written before turns were claimed).
type advanceRecord struct {
	Through      int64 `json:"through"`
	Offered      int64 `json:"offered,omitempty"`
	TTLMillis    int64 `json:"ttl_ms,omitempty"`
	WindowMillis int64 `json:"window_ms,omitempty"`
	coverRecord
}

// coverRecord is what a step, or a cover record, says its writer had
// read (Cover): the records of the line, the ledger and the decisions it
// places before it in the public line log, what the sale's ledger took,
// and the pace's graces. A record without Covers (written before the
// log) places nothing.
type coverRecord struct {
	Covers           *linelog.Covers `json:"covers,omitempty"`
	Limit            int64           `json:"limit,omitempty"`
	PassGraceMillis  int64           `json:"pass_grace_ms,omitempty"`
	ClaimGraceMillis int64           `json:"claim_grace_ms,omitempty"`
}

// Cover is what the writer of a step or of a cover record had read when
// it looked at the line: the last line record its book had applied, the
// ledger's last order and what it took in all, the sale's last decision;
// and the graces its pace gives a claim and a pass. Those records come
// before it in the public line log (linelog).
type Cover struct {
	Line, Orders, Decided uint64
	Limit                 int64
	PassGrace, ClaimGrace time.Duration
}

func (c Cover) record() coverRecord {
	return coverRecord{Covers: &linelog.Covers{LineSeq: c.Line, OrderSeq: c.Orders, DecisionSeq: c.Decided},
		Limit: c.Limit, PassGraceMillis: c.PassGrace.Milliseconds(), ClaimGraceMillis: c.ClaimGrace.Milliseconds()}
}

// coverOf reads what a step or cover record covers; false for a record
// written before the log, or another.
func coverOf(data []byte) (linelog.Covers, bool) {
	var c coverRecord
	if json.Unmarshal(data, &c) != nil || c.Covers == nil {
		return linelog.Covers{}, false
	}
	return *c.Covers, true
}

// stockRecord is a change of a sale's stock (ledger.EnsureSale records it
// before the sale takes it).
type stockRecord struct {
	Stock    int64 `json:"stock"`
	Overbook int64 `json:"overbook,omitempty"`
}

// advanceOf reads a pace record; false when it is not one.
func advanceOf(data []byte, at time.Time, seq uint64) (line.Advance, bool) {
	var a advanceRecord
	if json.Unmarshal(data, &a) != nil || a.Through <= 0 || a.TTLMillis < 0 || a.WindowMillis < 0 || a.Offered < 0 {
		return line.Advance{}, false
	}
	ttl := time.Duration(a.TTLMillis) * time.Millisecond
	if ttl == 0 {
		ttl = ledger.DefaultPassTTL
	}
	return line.Advance{Through: a.Through, Offered: a.Offered, At: at, TTL: ttl,
		Window: time.Duration(a.WindowMillis) * time.Millisecond, Seq: seq}, true
}

// claimRecord is a claim of a turn: the holder of Ticket asked for it
// while Position was offered.
type claimRecord struct {
	Ticket   string `json:"ticket"`
	Position int64  `json:"position"`
}

// rejoinRecord puts a ticket whose turn lapsed at the back of the line.
type rejoinRecord struct {
	Rejoin string `json:"rejoin"`
}

// rejoinOf reads a rejoin record.
func rejoinOf(data []byte) (line.TicketKey, bool) {
	var r rejoinRecord
	if json.Unmarshal(data, &r) != nil {
		return line.TicketKey{}, false
	}
	return line.KeyOf(r.Rejoin)
}
