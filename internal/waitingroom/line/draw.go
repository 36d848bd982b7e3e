package line

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Seed is the secret of a draw: 32 random bytes made when the waiting
// room is turned on. Before the start only its Commitment is public,
// after it the seed itself, so that anyone can recompute the draw and
// check that the seed was fixed before any ticket was drawn.
type Seed [32]byte

// NewSeed makes a seed from the system's random source.
func NewSeed() (Seed, error) {
	var s Seed
	if _, err := rand.Read(s[:]); err != nil {
		return Seed{}, fmt.Errorf("line: seed: %w", err)
	}
	return s, nil
}

// Hex is the seed as 64 lowercase hex digits, as it is published.
func (s Seed) Hex() string { return hex.EncodeToString(s[:]) }

// ParseSeed reads a seed written as 64 hex digits.
func ParseSeed(h string) (Seed, error) {
	var s Seed
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(s) {
		return Seed{}, fmt.Errorf("line: a seed is 64 hex digits, not %q", h)
	}
	copy(s[:], b)
	return s, nil
}

// Commitment is SHA-256 of the seed's 32 bytes, in hex: published before
// the start.
func (s Seed) Commitment() string {
	sum := sha256.Sum256(s[:])
	return hex.EncodeToString(sum[:])
}

// TicketHash is a ticket's public identity: SHA-256 of its id, in hex.
// The draw list publishes it; the id itself stays its holder's secret
// (it reads the ticket and its pass), and the hash reads neither.
func TicketHash(ticketID string) string {
	sum := sha256.Sum256([]byte(ticketID))
	return hex.EncodeToString(sum[:])
}

// Key is a ticket's place in the draw: HMAC-SHA256 with the seed as key
// and the 32 bytes of the ticket's hash (TicketHash, decoded) as message,
// in hex. The draw orders tickets by their keys, ascending. A hash that
// is not 64 hex digits is keyed by its text, and never matches a ticket.
func (s Seed) Key(ticketHash string) string {
	m := hmac.New(sha256.New, s[:])
	if b, err := hex.DecodeString(ticketHash); err == nil && len(b) == sha256.Size {
		m.Write(b)
	} else {
		m.Write([]byte(ticketHash))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Draw orders the hashes (TicketHash) of the tickets taken before the
// start: by Key, ascending (as hex strings; two equal keys, which HMAC
// makes as likely as a collision of SHA-256, would be ordered by hash).
// The result's first hash holds position 1.
func Draw(s Seed, ticketHashes []string) []string {
	type keyed struct{ key, h string }
	ks := make([]keyed, len(ticketHashes))
	for i, h := range ticketHashes {
		ks[i] = keyed{s.Key(h), h}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.h, b.h)
	})
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.h
	}
	return out
}

// Errors of VerifyDraw.
var (
	ErrCommitment = errors.New("line: the seed does not match the commitment")
	ErrDrawOrder  = errors.New("line: the tickets are not in the draw's order")
)

// VerifyDraw checks a published draw from public data alone: that the
// seed is the one committed to, and that the tickets' hashes, in the
// order given (position 1 first), are in the order the seed draws them.
func VerifyDraw(seedHex, commitment string, ordered []string) error {
	s, err := ParseSeed(seedHex)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(s.Commitment()), []byte(strings.ToLower(commitment))) {
		return ErrCommitment
	}
	want := Draw(s, ordered)
	for i := range want {
		if want[i] != ordered[i] {
			return fmt.Errorf("%w: position %d holds %s, the draw puts %s there", ErrDrawOrder, i+1, ordered[i], want[i])
		}
	}
	return nil
}

// ticketEncoding writes ticket ids: lowercase base32 without padding.
var ticketEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// TicketIDLen is the length of a ticket id: 128 random bits in base32.
const TicketIDLen = 26

// NewTicketID makes an unguessable ticket id: 128 random bits.
func NewTicketID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("line: ticket id: %w", err)
	}
	return ticketEncoding.EncodeToString(b[:]), nil
}

// ValidTicketID says whether s could be a ticket id NewTicketID made.
func ValidTicketID(s string) bool {
	if len(s) != TicketIDLen {
		return false
	}
	b, err := ticketEncoding.DecodeString(s)
	return err == nil && len(b) == 16 && bytes.Equal([]byte(ticketEncoding.EncodeToString(b)), []byte(s))
}
