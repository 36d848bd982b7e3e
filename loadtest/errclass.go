package loadtest

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/valyala/fasthttp"
)

// ErrorCount is one class of the rehearsal's failed requests and how many
// fell in it: an answer with its HTTP status and the problem's reason,
// or a transport error by its cause.
type ErrorCount struct {
	// Request is what was asked: join, challenge, poll or order.
	Request string `json:"request"`
	// Status and Reason: the gate's answer (Reason from its
	// problem+json, empty when it had none).
	Status int    `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Cause: no answer came: timeout, connection refused, connection
	// reset, broken pipe, closed by the gate (before the first byte of
	// the answer), EOF, no free connection, too many open files, no
	// local port, cancelled, or another error's text.
	Cause string `json:"cause,omitempty"`
	Count int    `json:"count"`
}

func (e ErrorCount) String() string {
	if e.Cause != "" {
		return e.Request + " " + e.Cause
	}
	s := e.Request + " " + statusName(e.Status)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	return s
}

// Requests of a rehearsal, as its errors name them.
const (
	reqJoin      = "join"
	reqChallenge = "challenge"
	reqPoll      = "poll"
	reqOrder     = "order"
)

// errorKey is an ErrorCount without its count.
type errorKey struct {
	request, reason, cause string
	status                 int
}

// transportCause names why a request got no answer, so that errors
// group by cause rather than by address or port.
func transportCause(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, fasthttp.ErrConnectionClosed):
		return "closed by the gate"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connection"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return strings.ToValidUTF8(s, "?")
}

// maxErrorClasses bounds the classes kept; the rest count as "other".
const maxErrorClasses = 200

// errorCounts tallies errors by class. Not safe for concurrent use.
type errorCounts map[errorKey]int

func (m errorCounts) add(k errorKey, n int) {
	if _, ok := m[k]; !ok && len(m) >= maxErrorClasses {
		k = errorKey{request: k.request, cause: "other"}
	}
	m[k] += n
}

// list is the classes, most frequent first.
func (m errorCounts) list() []ErrorCount {
	out := make([]ErrorCount, 0, len(m))
	for k, n := range m {
		out = append(out, ErrorCount{Request: k.request, Status: k.status, Reason: k.reason, Cause: k.cause, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].String() < out[j].String()
	})
	return out
}

// LapseCauses attributes the turns that lapsed (offered, not claimed
// within the claim window) to why their holders did not claim them.
type LapseCauses struct {
	// Gate is the line's own count (GET /v1/sales/{sale}/line "lapsed").
	Gate int64 `json:"gate"`
	// Never polled in time, seen by the holder's next poll: the poll
	// left later than --late-after after the time the gate gave (the
	// generator fell behind); it left on time (the gate's
	// poll_after_seconds brought the holder back after the window had
	// closed, or the gate answered too late); the holder's poll before
	// it failed (an error or a timeout: see the errors).
	GeneratorLate int `json:"generator_late"`
	CameWhenTold  int `json:"came_when_told"`
	PollFailed    int `json:"poll_failed"`
	// Away: offered to a holder who had left (--abandon), by the draw's
	// position and the line's offers.
	Away int `json:"away"`
}

// seen is the lapses the holders saw.
func (l LapseCauses) seen() int { return l.GeneratorLate + l.CameWhenTold + l.PollFailed }

// unseen is the gate's lapses nobody accounted for (a holder whose
// rehearsal ended before its next poll), never below 0.
func (l LapseCauses) unseen() int64 { return max(0, l.Gate-int64(l.seen()+l.Away)) }

func (l *LapseCauses) add(o LapseCauses) {
	l.GeneratorLate += o.GeneratorLate
	l.CameWhenTold += o.CameWhenTold
	l.PollFailed += o.PollFailed
}
