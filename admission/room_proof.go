package admission

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/internal/ledger"
	"sluice/internal/proof"
	"sluice/internal/waitingroom"
	"sluice/overflow"
)

// hProof is the header a join carries its proof of work in (ALTCHA's
// payload); a form carries it in the field "altcha", as the widget does.
const hProof = "Sluice-Proof"

func proofMaxNumber(cfg *ledger.Sale) int64 {
	if cfg.ProofMaxNumber > 0 {
		return cfg.ProofMaxNumber
	}
	return proof.DefaultMaxNumber
}

// getChallenge is GET /v1/sales/{sale}/line/challenge: a fresh ALTCHA
// challenge, signed with the sale's proof key, which every gate holds.
// It is made without I/O and remembered nowhere.
func (g *Gate) getChallenge(rc *fasthttp.RequestCtx, saleName string) {
	s, room, ok := g.saleRoom(rc, saleName)
	if !ok {
		return
	}
	cfg := s.cfg.Load()
	if cfg.JoinProof == "" {
		g.render.Respond(rc, overflow.Problem{Reason: overflow.NotFound, Sale: s.name,
			Detail: "This sale's line asks no proof of work: join it directly."})
		return
	}
	c, err := proof.New(s.proofKey(room), s.name, proofMaxNumber(cfg), g.now())
	if err != nil {
		g.unavailable.Respond(rc, overflow.AcceptsHTML(&rc.Request.Header))
		return
	}
	respondJSON(rc, http.StatusOK, c)
}

// verifyProof is a join's proof of work, for a sale that asks one: the
// solution is verified with one hash and one HMAC, no I/O. It returns the
// solution's challenge, which spendProof records, or the problem to
// answer with. noProof: the sale asks none.
func (g *Gate) verifyProof(rc *fasthttp.RequestCtx, s *sale, cfg *ledger.Sale, room *waitingroom.Room, f decodedOrder) (string, overflow.Problem) {
	if cfg.JoinProof == "" {
		return noProof, overflow.Problem{}
	}
	payload := f.altcha
	if vals := rc.Request.Header.PeekAll(hProof); len(vals) > 1 {
		return "", g.proofRefused("bad", "The Sluice-Proof header must be given once.")
	} else if len(vals) == 1 {
		if payload != "" {
			return "", g.proofRefused("bad", "Send the proof in the Sluice-Proof header or the altcha field, not both.")
		}
		payload = string(vals[0])
	}
	if payload == "" {
		g.m.proofs.WithLabelValues("missing").Inc()
		return "", overflow.Problem{Reason: overflow.ProofRequired, Line: lineURL(s.name) + "/challenge"}
	}
	p, err := proof.Verify(s.proofKey(room), payload, s.name, g.now())
	if err != nil {
		return "", g.proofRefused("bad", proofDetail(err))
	}
	return p.Challenge, overflow.Problem{}
}

// noProof is verifyProof's challenge for a sale that asks no proof.
const noProof = "-"

// spendProof records a verified solution as spent, durably, so that it
// buys one ticket on whichever gate.
func (g *Gate) spendProof(s *sale, challenge, buyer string) overflow.Problem {
	if challenge == noProof {
		return overflow.Problem{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.PublishTimeout)
	defer cancel()
	switch err := g.roomStore.SpendProof(ctx, s.name, challenge, buyer); {
	case errors.Is(err, waitingroom.ErrProofUsed):
		return g.proofRefused("used", "This solution bought a ticket already: solve a new challenge.")
	case err != nil:
		g.log.Warn("cannot record a proof of work", "sale", s.name, "err", err)
		return overflow.Problem{Reason: overflow.Unavailable, RetryAfter: time.Second,
			Detail: "The proof could not be recorded; joining again with it is safe."}
	}
	g.m.proofs.WithLabelValues("ok").Inc()
	return overflow.Problem{}
}

func (g *Gate) proofRefused(outcome, detail string) overflow.Problem {
	g.m.proofs.WithLabelValues(outcome).Inc()
	return overflow.Problem{Reason: overflow.BadProof, Detail: detail}
}

func proofDetail(err error) string {
	switch {
	case errors.Is(err, proof.ErrExpired):
		return "The challenge has expired: solve a new one."
	case errors.Is(err, proof.ErrSale):
		return "The challenge is another sale's."
	case errors.Is(err, proof.ErrWrong):
		return "The number does not solve the challenge."
	case errors.Is(err, proof.ErrSignature):
		return "The challenge is not one this sale's gates made."
	}
	return "The proof is not an ALTCHA payload: base64 of {algorithm, challenge, number, salt, signature}."
}

// proofKey is the sale's proof key (proof.Key of its waiting-room
// secret), derived once: a verification costs one hash and one HMAC.
func (s *sale) proofKey(room *waitingroom.Room) []byte {
	if k := s.proofKeyMemo.Load(); k != nil {
		return *k
	}
	k := proof.Key(room.Keys.Secret)
	s.proofKeyMemo.Store(&k)
	return k
}
