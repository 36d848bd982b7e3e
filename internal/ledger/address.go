package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AddressStream holds the tickets each client address took in a line
// with line_per_address: an address has line_per_address slots, each a
// subject holding at most one record (the buyer it went to), so the
// broker counts for every gate at once.
const AddressStream = "SLUICE_ADDRS"

// ErrAddressFull: the address holds line_per_address tickets.
var ErrAddressFull = errors.New("ledger: the address holds as many tickets as the line allows one")

func (l *Ledger) ensureAddresses(ctx context.Context) error {
	if _, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:                 AddressStream,
		Description:          "sluice: the tickets each client address took in lines with line_per_address",
		Subjects:             []string{"sluice.addr.>"},
		Retention:            jetstream.LimitsPolicy,
		Storage:              jetstream.FileStorage,
		Replicas:             l.opts.Replicas,
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		MaxMsgSize:           512,
		DenyDelete:           true,
		DenyPurge:            true,
	}); err != nil {
		return fmt.Errorf("ledger: provision %s: %w", AddressStream, err)
	}
	return nil
}

// TakeAddressSlot records that buyer, joining sale from the address
// whose key is addr ([0-9a-f]+), takes one of its limit slots. A buyer
// holding a slot of the address already takes no second one. It fails
// with ErrAddressFull, or an error matching ErrUnavailable.
func (l *Ledger) TakeAddressSlot(ctx context.Context, sale, addr, buyer string, limit int64) error {
	var str jetstream.Stream
	for k := int64(1); k <= limit; k++ {
		subj := "sluice.addr." + sale + "." + addr + "." + strconv.FormatInt(k, 10)
		_, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte(buyer)}, jetstream.WithExpectStream(AddressStream))
		if err == nil {
			return nil
		}
		if refusalOf(err) != refusedSubjectFull {
			return fmt.Errorf("%w: take an address slot: %w", ErrUnavailable, err)
		}
		if str == nil {
			if str, err = l.js.Stream(ctx, AddressStream); err != nil {
				return fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
		prev, err := str.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			return fmt.Errorf("%w: read an address slot: %w", ErrUnavailable, err)
		}
		if string(prev.Data) == buyer {
			return nil
		}
	}
	return ErrAddressFull
}
