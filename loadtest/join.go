package loadtest

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/valyala/fasthttp"
)

// join takes the buyer's ticket: POST /v1/sales/{sale}/line, after a
// proof of work when the sale asks one. Its latency counts from the
// planned join time.
func (w *crowdWorker) join(idx uint32) {
	r, b := w.r, &w.r.c.buyers[idx]
	intended := r.c.time(b.due)
	var proof string
	if r.proof {
		payload, cpu, err := w.solveChallenge()
		if err != nil {
			r.finish(idx, oProofError)
			return
		}
		proof, b.proofUS = payload, uint32(min(cpu.Microseconds(), 1<<32-1))
	}
	req := w.req
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(r.lineURL)
	req.Header.SetContentType("application/json")
	req.Header.Set("Accept", "application/json")
	if proof != "" {
		req.Header.Set("Sluice-Proof", proof)
	}
	req.SetBodyRaw(w.buyerBody(idx, ""))
	at := time.Now()
	err := w.do(req, at)
	answered := time.Now()
	w.lats.add(r.st, latJoin, answered.Sub(earlier(intended, at)))
	status := w.resp.StatusCode()
	switch {
	case err != nil:
		w.failed(reqJoin, err)
		r.finish(idx, r.c.names.code("join_0"))
		return
	case status != fasthttp.StatusCreated:
		w.refused(reqJoin, status, "", w.resp.Body())
		r.finish(idx, r.c.names.code("join_"+statusName(status)))
		return
	case !w.ans.parse(w.resp.Body()) || len(w.ans.ticket) == 0:
		w.refused(reqJoin, status, "unreadable answer", nil)
		r.finish(idx, r.c.names.code("join_unreadable"))
		return
	}
	r.c.setTicket(idx, w.ans.ticket)
	b.joinAt = r.c.ms(at)
	if w.ans.drawn {
		b.flags |= fDrawn
	}
	r.st.joined.Add(1)
	w.handle(idx, at, answered, true, false, false)
}

// errNoChallenge: the challenge's answer was not one.
var errNoChallenge = errors.New("loadtest: the challenge's answer is not an ALTCHA challenge")

// solveChallenge fetches a proof-of-work challenge and solves it: the
// payload a join carries, and the CPU it took.
func (w *crowdWorker) solveChallenge() (string, time.Duration, error) {
	req := w.req
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(w.r.challengeURL)
	req.Header.Set("Accept", "application/json")
	if err := w.do(req, time.Now()); err != nil {
		w.failed(reqChallenge, err)
		return "", 0, err
	}
	if status := w.resp.StatusCode(); status != fasthttp.StatusOK {
		w.refused(reqChallenge, status, "", w.resp.Body())
		return "", 0, errNoChallenge
	}
	var ch challengeAnswer
	if err := json.Unmarshal(w.resp.Body(), &ch); err != nil || ch.Challenge == "" {
		w.refused(reqChallenge, fasthttp.StatusOK, "unreadable answer", nil)
		return "", 0, errNoChallenge
	}
	return solveAltcha(ch)
}
