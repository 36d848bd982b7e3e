//go:build race

package payload

// raceEnabled: under the race detector sync.Pool drops what it holds at
// random, so every regexp match may allocate its machine anew: what a
// check allocates is measured without it.
const raceEnabled = true
