package loadtest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"time"
)

// SybilReport is what one client joining many ids took (--sybil N): its
// share of the line and of the stock, and the CPU its proofs of work
// cost it.
type SybilReport struct {
	IDs     int `json:"ids"`     // ids the attacker tried to join
	Workers int `json:"workers"` // joins (and proofs) it worked on at once
	Joined  int `json:"joined"`  // of them in the draw
	Served  int `json:"served"`  // of them served with a pass
	// ShareOfLine is Joined over every ticket drawn; ShareOfStock Served
	// over the stock.
	ShareOfLine  float64 `json:"share_of_line"`
	ShareOfStock float64 `json:"share_of_stock"`
	// Proof: the sale asked a proof of work per join. CPUSeconds is the
	// CPU the attacker's proofs took (thread CPU time where the system
	// tells it), CPUPerTicket that over the tickets it got.
	Proof        bool    `json:"proof"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUPerTicket float64 `json:"cpu_seconds_per_ticket"`
	// HonestProofMedianMs is the median CPU of one honest buyer's proof,
	// in this generator (native code: a browser is slower).
	HonestProofMedianMs float64 `json:"honest_proof_median_ms"`
}

func (s *SybilReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "  sybil: one client joined %d of %d ids before the start (%d at once): %.1f%% of the line, served %d = %.1f%% of the stock\n",
		s.Joined, s.IDs, s.Workers, 100*s.ShareOfLine, s.Served, 100*s.ShareOfStock)
	if s.Proof {
		fmt.Fprintf(w, "    its proofs of work took %.2f CPU s, %.4f s a ticket it got; an honest buyer's proof %.1f ms (native)\n",
			s.CPUSeconds, s.CPUPerTicket, s.HonestProofMedianMs)
	} else {
		fmt.Fprintln(w, "    the sale asks no proof of work: each id cost it one request")
	}
}

// challengeAnswer is GET /v1/sales/{sale}/line/challenge.
type challengeAnswer struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	MaxNumber int64  `json:"maxnumber"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// errUnsolved: no number up to maxnumber solves the challenge.
var errUnsolved = errors.New("loadtest: the challenge has no solution up to its maxnumber")

// solveAltcha finds the number of an ALTCHA challenge as its widget does
// (SHA-256 of salt + decimal number, counting up from 0) and returns the
// payload a join carries, and the CPU time it took on this thread.
func solveAltcha(c challengeAnswer) (string, time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := threadCPU()
	want := make([]byte, 0, 32)
	for i := 0; i+1 < len(c.Challenge); i += 2 {
		v, err := strconv.ParseUint(c.Challenge[i:i+2], 16, 8)
		if err != nil {
			return "", 0, fmt.Errorf("loadtest: challenge %q: %w", c.Challenge, err)
		}
		want = append(want, byte(v))
	}
	buf := []byte(c.Salt)
	n0 := len(buf)
	for n := int64(0); n <= c.MaxNumber; n++ {
		buf = strconv.AppendInt(buf[:n0], n, 10)
		if sum := sha256.Sum256(buf); string(sum[:]) == string(want) {
			p, _ := json.Marshal(map[string]any{"algorithm": c.Algorithm, "challenge": c.Challenge, "number": n,
				"salt": c.Salt, "signature": c.Signature})
			return base64.StdEncoding.EncodeToString(p), threadCPU() - t0, nil
		}
	}
	return "", threadCPU() - t0, errUnsolved
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// sybilReport sums the attacker's ids up against the line and the stock.
func sybilReport(c *crowd, ids, workers int, proof bool, stock int64, drawn int) *SybilReport {
	r := &SybilReport{IDs: ids, Workers: workers, Proof: proof}
	var cpu time.Duration
	var honest []float64
	for i := range c.buyers {
		b := &c.buyers[i]
		if !b.is(fSybil) {
			if b.proofUS > 0 {
				honest = append(honest, float64(b.proofUS)/1000)
			}
			continue
		}
		cpu += time.Duration(b.proofUS) * time.Microsecond
		if b.is(fTicket) && b.is(fDrawn) {
			r.Joined++
		}
		if b.is(fServed) {
			r.Served++
		}
	}
	r.CPUSeconds = cpu.Seconds()
	if drawn > 0 {
		r.ShareOfLine = float64(r.Joined) / float64(drawn)
	}
	if stock > 0 {
		r.ShareOfStock = float64(r.Served) / float64(stock)
	}
	if r.Joined > 0 {
		r.CPUPerTicket = r.CPUSeconds / float64(r.Joined)
	}
	r.HonestProofMedianMs = median(honest)
	return r
}
