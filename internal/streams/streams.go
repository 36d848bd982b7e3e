// Package streams names and configures every JetStream stream sluice
// keeps, in one place: what each holds, on which subjects, and the limits
// by which the broker itself keeps a promise (a sale's stock, one order
// and one ticket per buyer, one spend per proof of work). The packages
// that write a stream provision it from here: ledger (the sales, the
// probe), room (the lines, the pace, the keys, the proofs, the
// addresses), orderstatus (the decisions) and drain (the dead letters).
// It also tells apart the refusals those limits give (refusal.go).
package streams

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options are what every sluice stream shares. The zero value means one
// replica and DefaultDuplicateWindow.
type Options struct {
	// Replicas of each stream; 3 in a cluster.
	Replicas int
	// DuplicateWindow is how long a Nats-Msg-Id is remembered by the
	// streams that deduplicate by it.
	DuplicateWindow time.Duration
}

// DefaultDuplicateWindow is how long a Nats-Msg-Id is remembered: a retry
// with the same idempotency key within it gets the original order back.
// Only stored orders are remembered, so the window costs memory in
// proportion to stock, not to traffic.
const DefaultDuplicateWindow = 24 * time.Hour

func (o Options) replicas() int { return max(1, o.Replicas) }

func (o Options) duplicates() time.Duration {
	if o.DuplicateWindow <= 0 {
		return DefaultDuplicateWindow
	}
	return o.DuplicateWindow
}

// The streams every sale shares.
const (
	// Pace holds each waiting room's steps (let in through N, offered
	// through M; each a compare-and-set on the last), the claims of
	// turns, the passes used and the marks that turn a room off and on.
	Pace = "SLUICE_PACE"
	// Keys is the key-value bucket of each waiting room's draw seed and
	// pass secret, made once when the room is first turned on.
	Keys = "SLUICE_LINE_KEYS"
	// Proofs holds the proofs of work spent on tickets, one subject per
	// solution holding the buyer it bought a ticket for: a solution buys
	// one ticket whichever gate it is shown to. Records outlive the
	// challenges they spend (ProofMaxAge) and then age out.
	Proofs = "SLUICE_PROOFS"
	// Addresses holds the tickets each client address took in a line
	// with line_per_address: an address has line_per_address slots, each
	// a subject holding at most one record (the buyer it went to).
	Addresses = "SLUICE_ADDRS"
	// Decisions holds what the drain decided for each order, one record
	// per batch.
	Decisions = "SLUICE_DECISIONS"
	// DeadLetters holds the orders the drain gave up on, on subjects
	// sluice.dead.<sale>, with headers Sluice-Order-Id, Sluice-Reason and
	// Sluice-Deliveries.
	DeadLetters = "SLUICE_DEAD"
	// Probe is a one-message stream, stored like the sales' streams, that
	// a gate writes to while the ledger refuses orders (a full disk, a
	// store that stopped answering) to learn when it takes writes again.
	Probe = "SLUICE_PROBE"
)

// ProbeSubject is the probe stream's one subject.
const ProbeSubject = "sluice.probe"

// ProofMaxAge bounds a spent proof's record: longer than any challenge's
// life, after which the challenge is refused as expired anyway.
const ProofMaxAge = time.Hour

// MaxLineLimit bounds a line: every gate holds its line in memory. It is
// the line stream's own bound, and the bound of a sale's line_limit.
const MaxLineLimit = 10_000_000

// SaleName is the name of a sale's stream, the admission ledger.
func SaleName(sale string) string { return "SLUICE_" + sale }

// SaleSubjectPrefix is the subject prefix of a sale's orders; one subject
// per buyer (and round) follows it.
func SaleSubjectPrefix(sale string) string { return "sluice.orders." + sale + "." }

// SaleSubjects selects every sale stream, for listing them.
const SaleSubjects = "sluice.orders.>"

// StockSubjectPrefix is the subject prefix of what a sale with variants
// keeps beside its orders: the units a lowering of a variant's stock
// burned, one subject per unit (sluice.stock.<sale>.<variant>.<unit>).
func StockSubjectPrefix(sale string) string { return "sluice.stock." + sale + "." }

// LineName is the name of a sale's line stream.
func LineName(sale string) string { return "SLUICE_LINE_" + sale }

// LineSubjectPrefix is the subject prefix of a sale's line: its buyers'
// tickets, their returns to the back, the draw mark.
func LineSubjectPrefix(sale string) string { return "sluice.line." + sale + "." }

// PaceSubjectPrefix is the subject prefix of a sale's records in Pace.
func PaceSubjectPrefix(sale string) string { return "sluice.pace." + sale + "." }

// ProofSubjectPrefix is the subject prefix of a sale's spent proofs.
func ProofSubjectPrefix(sale string) string { return "sluice.proof." + sale + "." }

// AddressSubjectPrefix is the subject prefix of a sale's address slots.
func AddressSubjectPrefix(sale string) string { return "sluice.addr." + sale + "." }

// DecisionSubject is the subject of a sale's decisions.
func DecisionSubject(sale string) string { return "sluice.decided." + sale }

// DeadLetterSubject is the subject of a sale's dead letters.
func DeadLetterSubject(sale string) string { return "sluice.dead." + sale }

// SaleConfig is a sale's stream, the admission ledger: limit orders in
// all (stock + overbook + released) with DiscardNew, so the broker
// refuses the order that would oversell, atomically for every gate; one
// subject per buyer (per round) holding at most perBuyer orders with
// DiscardNewPerSubject, so it refuses a buyer's extra orders. Orders are
// never removed (limits retention, no delete, no purge): the drain
// tracks its progress with a durable consumer. The sale's settings live
// in metadata, so every gate sharing the domain reads the same sales.
func SaleConfig(sale string, limit, perBuyer int64, metadata map[string]string, o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 SaleName(sale),
		Description:          "sluice sale " + sale + ": admitted orders",
		Subjects:             []string{SaleSubjectPrefix(sale) + ">"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             o.replicas(),
		MaxMsgs:              limit,
		Discard:              jetstream.DiscardNew,
		MaxMsgsPerSubject:    perBuyer,
		DiscardNewPerSubject: true,
		Duplicates:           o.duplicates(),
		MaxMsgSize:           4096,
		AllowDirect:          true,
		DenyDelete:           true,
		DenyPurge:            true,
		Metadata:             metadata,
	}
}

// VariantSaleConfig is the stream of a sale with variants: SaleConfig's
// orders on the buyers' subjects (per_buyer counts across variants), with
// no limit on the stream's messages, and the stock subjects. What keeps
// a variant's stock is each order's message id, the unit of the variant
// it takes (ledger's variant.go): JetStream stores a unit's id once, so
// the duplicate window is at least a week, longer than any drop's sale.
func VariantSaleConfig(sale string, perBuyer int64, metadata map[string]string, o Options) jetstream.StreamConfig {
	cfg := SaleConfig(sale, -1, perBuyer, metadata, o)
	cfg.Description = "sluice sale " + sale + ": admitted orders of its variants, and the units a lowering of their stock burned"
	cfg.Subjects = append(cfg.Subjects, StockSubjectPrefix(sale)+">")
	cfg.Duplicates = max(cfg.Duplicates, MinUnitWindow)
	return cfg
}

// MinUnitWindow is the shortest duplicate window of a sale with
// variants: within it JetStream itself refuses a unit's second use.
const MinUnitWindow = 7 * 24 * time.Hour

// LineConfig is a sale's line stream: one subject per buyer holding that
// buyer's ticket (at most one message per subject, so a buyer holds one
// place, as the broker enforces), one per buyer for a return to the back
// after a lapse (once), and the draw mark, whose sequence seals the
// draw. Its bound is the memory one, MaxLineLimit, not line_limit:
// before the start everyone joins the draw, and after it the gates apply
// line_limit; a line full at the start is sealed without the mark. No
// message ids: the subjects' limit of one answers a second join, and a
// line of a million keeps no million ids in the duplicate window.
func LineConfig(sale string, o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 LineName(sale),
		Description:          "sluice sale " + sale + ": the waiting room's line",
		Subjects:             []string{LineSubjectPrefix(sale) + ">"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             o.replicas(),
		MaxMsgs:              MaxLineLimit,
		Discard:              jetstream.DiscardNew,
		MaxMsgsPerSubject:    1,
		DiscardNewPerSubject: true,
		Duplicates:           o.duplicates(),
		MaxMsgSize:           1024,
		AllowDirect:          true,
		DenyDelete:           true,
		DenyPurge:            true,
	}
}

// PaceConfig is the pace stream, shared by every waiting room.
func PaceConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Pace,
		Description: "sluice: the waiting rooms' pace (let in through position N) and the passes used",
		Subjects:    []string{"sluice.pace.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas(),
		Duplicates:  o.duplicates(),
		MaxMsgSize:  1024,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// KeysConfig is the bucket of the waiting rooms' secrets: one key per
// sale, written once (Create), never changed.
func KeysConfig(o Options) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Keys,
		Description: "sluice: each waiting room's draw seed and pass secret",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas(),
	}
}

// ProofsConfig is the stream of spent proofs: one record per solution.
func ProofsConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 Proofs,
		Description:          "sluice: proofs of work spent on waiting-room tickets, one subject per solution",
		Subjects:             []string{"sluice.proof.>"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             o.replicas(),
		MaxAge:               ProofMaxAge,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           2 * time.Minute,
		MaxMsgSize:           512,
		DenyDelete:           true,
		DenyPurge:            true,
	}
}

// AddressesConfig is the stream of address slots: one record per slot.
func AddressesConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:                 Addresses,
		Description:          "sluice: the tickets each client address took in lines with line_per_address",
		Subjects:             []string{"sluice.addr.>"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             o.replicas(),
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           512,
		DenyDelete:           true,
		DenyPurge:            true,
	}
}

// DecisionsConfig is the decisions stream: what the drain decided, kept.
func DecisionsConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Decisions,
		Description: "sluice: what the drain decided for each order, one record per batch",
		Subjects:    []string{"sluice.decided.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    o.replicas(),
		MaxMsgSize:  1 << 20,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// DeadLettersConfig is the dead-letter stream: kept thirty days.
func DeadLettersConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DeadLetters,
		Description: "sluice: orders the drain gave up on",
		Subjects:    []string{"sluice.dead.>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  time.Hour,
	}
}

// ProbeConfig is the probe stream: one message, the last write.
func ProbeConfig(o Options) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Probe,
		Description: "sluice: a gate's probe of the store while it refuses orders",
		Subjects:    []string{ProbeSubject},
		Storage:     jetstream.FileStorage,
		Replicas:    o.replicas(),
		MaxMsgs:     1,
		Discard:     jetstream.DiscardOld,
	}
}
