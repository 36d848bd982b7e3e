//go:build race

package drain_test

// raceEnabled: the race detector makes goroutine stacks and heap objects
// larger, so memory bounds allow for it.
const raceEnabled = true
