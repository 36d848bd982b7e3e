package consumer

import "errors"

// ErrUnavailable marks a backend error that concerns the backend as a
// whole (down, unreachable, timing out) rather than the orders of a batch:
// the drain then retries the batch later instead of order by order, and
// never dead-letters an order for it. A backend wraps it (%w) in the
// errors it returns and in a Retry result's Err.
var ErrUnavailable = errors.New("consumer: backend unavailable")

// ErrBadResults is the error of a backend call that answered a batch with
// a wrong number of results.
var ErrBadResults = errors.New("consumer: backend returned a result count that does not match the batch")
