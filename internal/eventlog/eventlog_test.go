package eventlog

import (
	"testing"
	"time"
)

func TestEventLogOneLinePerInterval(t *testing.T) {
	e := Log{Every: 10 * time.Second}
	t0 := time.Unix(1_700_000_000, 0)
	var lines []int
	line := func(n int) { lines = append(lines, n) }
	for i := range 1000 { // 1000 events in 5 s: one line, at once
		e.Note(t0.Add(time.Duration(i)*5*time.Millisecond), line)
	}
	if len(lines) != 1 || lines[0] != 1 {
		t.Fatalf("lines %v after a burst, want [1]", lines)
	}
	e.Note(t0.Add(11*time.Second), line) // the next line counts the burst's rest
	if len(lines) != 2 || lines[1] != 1000 {
		t.Fatalf("lines %v, want [1 1000]", lines)
	}
}
