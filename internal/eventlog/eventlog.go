// Package eventlog turns a frequent event into at most one log line per
// interval, so that no client can make a process log as fast as it sends.
package eventlog

import (
	"sync"
	"time"
)

// Log turns a frequent event into at most one log line per interval: the
// first occurrence is logged at once, the later ones are counted and
// reported with the next line. The zero value logs every minute; it is
// safe for concurrent use.
type Log struct {
	// Every is the interval; zero means a minute.
	Every time.Duration
	mu    sync.Mutex
	last  time.Time
	n     int // occurrences since the last line, this one included
}

// Note records an occurrence at now and, when a line is due, calls line
// with how many occurrences it stands for.
func (e *Log) Note(now time.Time, line func(n int)) {
	every := e.Every
	if every <= 0 {
		every = time.Minute
	}
	e.mu.Lock()
	e.n++
	if !e.last.IsZero() && now.Sub(e.last) < every {
		e.mu.Unlock()
		return
	}
	n := e.n
	e.n, e.last = 0, now
	e.mu.Unlock()
	line(n)
}
