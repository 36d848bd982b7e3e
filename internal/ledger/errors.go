package ledger

import "errors"

var (
	// ErrSoldOut is returned by Place when the stream refused the order
	// because it holds as many orders as the sale has stock.
	ErrSoldOut = errors.New("ledger: sold out")
	// ErrStockHeld is returned by PlaceBeyond when every order the
	// sale's stream still takes is held by its waiting room's turns and
	// passes (a room turned off; line.Book.Mark).
	ErrStockHeld = errors.New("ledger: the stock left is held by the line")
	// ErrAlreadyOrdered is returned (wrapped in *AlreadyOrderedError) when
	// the buyer holds the sale's per-buyer number of orders already.
	ErrAlreadyOrdered = errors.New("ledger: buyer already ordered")
	// ErrUnavailable wraps every failure that leaves an order's fate
	// unknown or refused for reasons other than stock: no JetStream, a
	// timeout, a full store. The order must not be answered as admitted.
	ErrUnavailable = errors.New("ledger: unavailable")
	// ErrStoreFull is returned (also matching ErrUnavailable) when
	// JetStream has no room left to store the order.
	ErrStoreFull = errors.New("ledger: store full")
	// ErrNotFound is returned by Lookup for an order id that names no order.
	ErrNotFound = errors.New("ledger: order not found")
	// ErrNoSale is returned when a sale's stream does not exist.
	ErrNoSale = errors.New("ledger: no such sale")
	// ErrVariantSoldOut is returned by Place for an order of a variant
	// with no unit left (the sale's other variants may have some).
	ErrVariantSoldOut = errors.New("ledger: variant sold out")
	// ErrUnknownVariant is returned by Place for an order naming a
	// variant its sale does not sell.
	ErrUnknownVariant = errors.New("ledger: unknown variant")
	// ErrVariantRequired is returned by Place for an order naming no
	// variant in a sale with variants.
	ErrVariantRequired = errors.New("ledger: the order names no variant")
	// ErrInvalidSale is returned by EnsureSale for a sale that cannot be
	// provisioned (bad name, negative stock, window ends before it starts).
	ErrInvalidSale = errors.New("ledger: invalid sale")
)

// AlreadyOrderedError carries the order the buyer already holds.
type AlreadyOrderedError struct {
	Existing OrderID
}

func (e *AlreadyOrderedError) Error() string {
	return "ledger: buyer already ordered " + e.Existing.String()
}

// Is makes errors.Is(err, ErrAlreadyOrdered) true.
func (e *AlreadyOrderedError) Is(target error) bool { return target == ErrAlreadyOrdered }
