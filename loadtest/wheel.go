package loadtest

import "sync"

// wheelSlots is the wheel's size: one slot a millisecond, a turn of 65.5
// seconds (the gate's longest poll_after_seconds is 60).
const wheelSlots = 1 << 16

// wheelEntry is a buyer waiting in the wheel, and when it is due (ms).
type wheelEntry struct {
	idx uint32
	due int32
}

// wheel is a hashed timing wheel: the buyers waiting for their next
// step, each in the slot of its due millisecond. A buyer due further
// ahead than a turn waits in its slot for the turns between. Adding and
// taking cost the same however many buyers wait: eight bytes each, and
// no timer or goroutine of their own. Safe for concurrent use; the zero
// value is not (newWheel).
type wheel struct {
	mu     sync.Mutex
	slots  [][]wheelEntry
	cursor int32 // the first millisecond not yet taken
	n      int   // entries waiting
}

func newWheel(from int32) *wheel {
	return &wheel{slots: make([][]wheelEntry, wheelSlots), cursor: from}
}

// add puts buyer idx in the wheel, due at due; one due before the wheel's
// cursor is due at once.
func (w *wheel) add(idx uint32, due int32) {
	w.mu.Lock()
	due = max(due, w.cursor)
	s := &w.slots[uint32(due)%wheelSlots]
	*s = append(*s, wheelEntry{idx, due})
	w.n++
	w.mu.Unlock()
}

// take appends to dst the buyers due by now, in the order of their
// slots, and moves the cursor past now.
func (w *wheel) take(now int32, dst []wheelEntry) []wheelEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	for scanned := 0; w.cursor <= now && w.n > 0; scanned++ {
		if scanned == wheelSlots {
			// A whole turn scanned (the taker was held up for more than
			// one): every entry due by now is taken.
			break
		}
		s := &w.slots[uint32(w.cursor)%wheelSlots]
		keep := (*s)[:0]
		for _, e := range *s {
			if e.due <= now {
				dst = append(dst, e)
				w.n--
			} else {
				keep = append(keep, e)
			}
		}
		*s = keep
		w.cursor++
	}
	if w.cursor <= now {
		w.cursor = now + 1
	}
	return dst
}

// len is how many buyers wait.
func (w *wheel) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}
