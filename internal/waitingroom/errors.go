package waitingroom

import "errors"

var (
	// ErrLineFull: the line holds as many tickets as its stream takes.
	ErrLineFull = errors.New("waitingroom: the line is full")
	// ErrPaceMoved: another gate advanced the pace first.
	ErrPaceMoved = errors.New("waitingroom: the pace moved on")
	// ErrProofUsed: the solution bought another buyer's ticket already.
	ErrProofUsed = errors.New("waitingroom: the proof of work was spent already")
	// ErrAddressFull: the address holds line_per_address tickets.
	ErrAddressFull = errors.New("waitingroom: the address holds as many tickets as the line allows one")
)
