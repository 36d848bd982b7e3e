package waitingroom

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sluice/internal/ledger"
	"sluice/internal/streams"
)

// TakeAddressSlot records that buyer, joining sale from the address
// whose key is addr ([0-9a-f]+), takes one of its limit slots. A buyer
// holding a slot of the address already takes no second one. It fails
// with ErrAddressFull, or an error matching ledger.ErrUnavailable.
func (st *Store) TakeAddressSlot(ctx context.Context, sale, addr, buyer string, limit int64) error {
	var str jetstream.Stream
	for k := int64(1); k <= limit; k++ {
		subj := streams.AddressSubjectPrefix(sale) + addr + "." + strconv.FormatInt(k, 10)
		_, err := st.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte(buyer)}, jetstream.WithExpectStream(streams.Addresses))
		if err == nil {
			return nil
		}
		if streams.RefusalOf(err) != streams.RefusedSubjectFull {
			return fmt.Errorf("%w: take an address slot: %w", ledger.ErrUnavailable, err)
		}
		if str == nil {
			if str, err = st.js.Stream(ctx, streams.Addresses); err != nil {
				return fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
			}
		}
		prev, err := str.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			return fmt.Errorf("%w: read an address slot: %w", ledger.ErrUnavailable, err)
		}
		if string(prev.Data) == buyer {
			return nil
		}
	}
	return ErrAddressFull
}
