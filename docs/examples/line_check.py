#!/usr/bin/env python3
"""Check a sluice sale's public line log, with Python's standard library alone.

    python3 line_check.py http://127.0.0.1:8080 drop          # read the log and the draw from a gate
    python3 line_check.py --log log.json [--draw draw.json]   # files as sluice line verify --save-log/--save-draw write them

It checks, from public data alone, what docs/line-audit.md says a log
promises: the records are all there and in the log's order; the seed is
the one committed to and draws the tickets in the draw list's order; every
turn is offered in position order to the ticket that holds the position;
a ticket goes to the back of the line once, after its turn lapsed; a pass
goes only to a turn offered, claimed (when it had to be) and let in; at
every step the passes outstanding, the claimable turns and the orders fit
the stock; every order placed with a pass has one granted to its ticket,
unexpired, once. It prints the first record that breaks a rule and exits 1.
(`sluice line verify` also recomputes every derived record and what the
line held when an order without a pass was placed.)
"""
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone


class Broken(Exception):
    pass


def get(url):
    for _ in range(60):
        try:
            return json.load(urllib.request.urlopen(url))
        except urllib.error.HTTPError as e:
            if e.code != 503:  # 503: the gate is reading the log: ask again
                raise
            time.sleep(1)
    raise SystemExit("the gate did not serve " + url)


def fetch(base, sale):
    g = base.rstrip("/") + "/v1/sales/" + sale
    records = []
    while True:
        page = get(f"{g}/line/log?from={len(records) + 1}&limit=10000")
        records += page["records"]
        if len(page["records"]) < 10000:
            break
    d = get(g + "/draw")
    if not d.get("seed"):
        return records, None
    hashes, nxt = [], f"/v1/sales/{sale}/draw/tickets?limit=10000"
    while nxt:
        page = get(base.rstrip("/") + nxt)
        hashes += page["ticket_hashes"]
        nxt = page.get("next")
    return records, {"commitment": d["commitment"], "seed": d["seed"], "ticket_hashes": hashes}


def ns(s):
    """An RFC 3339 time in UTC ("…Z"), as nanoseconds since 1970."""
    whole, _, frac = s.rstrip("Z").partition(".")
    t = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(t.timestamp()) * 10**9 + int((frac + "000000000")[:9])


PACE = {"step", "cover", "claim", "use", "room", "stock"}


def check(records, draw):
    s = dict(line=0, order=0, decision=0, pace=0, gap=0, cover=[0, 0, 0], let_in=0, offered=0, grace=7000)
    s.update(joined=[], holder=[None], sealed=False, offers={}, claimed=set(), back=set(),
             passes={}, ordered=set(), orders=0, sum=dict(offers=0, passes=0, lapses=0, rejoins=0, orders=0, steps=0))
    for i, r in enumerate(records):
        try:
            check_record(s, i, r, draw)
        except Broken as e:
            raise Broken(f"record {r.get('seq')} ({r.get('kind')}) breaks it: {e}\n  {json.dumps(r)}")
    if s["gap"]:
        raise Broken("records of the line, the ledger or the decisions after the last record of the pace that places them")
    return s["sum"]


def place(s, r):
    """The log's order: each stream in its own, none left out, each record
    of another stream before the step or cover record that covers it."""
    k = r["kind"]
    if "line_seq" in r:
        if r["line_seq"] != s["line"] + 1 or s["gap"] > 1:
            raise Broken("a line record out of order")
        s["line"], s["gap"] = r["line_seq"], 1
    elif "decision_seq" in r:
        if r["decision_seq"] <= s["decision"] or s["gap"] > 2:
            raise Broken("a decision out of order")
        s["decision"], s["gap"] = r["decision_seq"], 2
    elif "order_seq" in r:
        if r["order_seq"] != s["order"] + 1:
            raise Broken("an order out of order")
        s["order"], s["gap"] = r["order_seq"], 3
    elif k in PACE or "pace_seq" in r:
        if r["pace_seq"] <= s["pace"]:
            raise Broken("a record of the pace out of order")
        s["pace"] = r["pace_seq"]
        c = r.get("covers")
        if c:
            s["cover"] = [max(s["cover"][0], c["line_seq"]), max(s["cover"][1], c["order_seq"]), max(s["cover"][2], c["decision_seq"])]
            if [s["line"], s["order"], s["decision"]] != s["cover"]:
                raise Broken("it does not cover exactly the records before it")
        elif s["gap"]:
            raise Broken("records of another stream before a record of the pace that does not cover them")
        s["gap"] = 0


def check_record(s, i, r, draw):
    if r["seq"] != i + 1:
        raise Broken(f"record {r['seq']} where record {i + 1} belongs")
    k, h, p = r["kind"], r.get("ticket"), r.get("position", 0)
    if (i == 0) != (k == "commitment"):
        raise Broken("the log opens with the commitment, once")
    if k not in ("offer", "grant", "lapse", "expire"):
        place(s, r)
    s["grace"] = r.get("pass_grace_ms", s["grace"])
    if k == "commitment":
        s["commitment"] = r["commitment"]
    elif k == "join" and not s["sealed"]:
        s["joined"].append(h)
    elif k in ("join", "rejoin") and p:
        if p != len(s["holder"]):
            raise Broken(f"position {p}: the back of the line is {len(s['holder'])}")
        if k == "rejoin":
            h0, _, claim_by = s["offers"].get(r["from"], (None, False, 0))
            if h in s["back"] or h0 != h or ns(r["at"]) < claim_by:
                raise Broken("back to the end of the line twice, or before its turn lapsed")
            s["back"].add(h)
            s["sum"]["rejoins"] += 1
        s["holder"].append(h)
    elif k == "draw":
        seed = bytes.fromhex(r["seed"])
        if hashlib.sha256(seed).hexdigest() != s["commitment"]:
            raise Broken("SHA-256 of the seed is not the commitment")
        key = lambda x: (hmac.new(seed, bytes.fromhex(x), hashlib.sha256).hexdigest(), x)
        drawn = sorted(s["joined"], key=key)
        if r["drawn"] != len(drawn) or (draw and (draw["seed"] != r["seed"] or draw["ticket_hashes"] != drawn)):
            raise Broken("the draw list is not the draw of the tickets joined before the draw record")
        s["holder"] += drawn
        s["sealed"] = True
    elif k == "step":
        st = r["state"]
        if st["let_in"] < s["let_in"] or st["orders"] != s["orders"]:
            raise Broken("the let-in went back, or the orders are not those before it")
        s["let_in"] = st["let_in"]
        s["sum"]["steps"] += 1
        if "limit" in r and (st["stock_left"] != r["limit"] - st["orders"] or st["held"] + st["orders"] > r["limit"]):
            raise Broken(f"{st['held']} held by the line + {st['orders']} orders > the {r['limit']} the sale takes")
    elif k == "offer":
        if p <= s["offered"] or p >= len(s["holder"]) or s["holder"][p] != h:
            raise Broken(f"an offer out of position order, or not to the ticket at position {p}")
        s["offered"], s["offers"][p] = p, (h, "claim_by" in r, ns(r.get("claim_by", r["at"])))
        s["sum"]["offers"] += 1
    elif k == "claim" and r.get("counted"):
        if s["offers"].get(p, (None,))[0] != h or p in s["claimed"]:
            raise Broken("a claim counted of a turn not offered to this ticket, or claimed already")
        s["claimed"].add(p)
    elif k == "grant":
        h0, needs_claim, _ = s["offers"].get(p, (None, True, 0))
        if h0 != h or (needs_claim and p not in s["claimed"]) or p > s["let_in"] or h in s["passes"]:
            raise Broken("a pass to a turn not offered, claimed and let in, or a second one")
        s["passes"][h] = ns(r["expires"])
        s["sum"]["passes"] += 1
    elif k == "lapse":
        if s["offers"].get(p, (None,))[0] != h or p in s["claimed"]:
            raise Broken("a lapse of a turn not offered, or claimed")
        s["sum"]["lapses"] += 1
    elif k == "order":
        if h and (h not in s["passes"] or h in s["ordered"] or ns(r["at"]) >= s["passes"][h] + s["grace"] * 10**6):
            raise Broken("an order with a pass not granted to its ticket, expired, or used already")
        s["ordered"].add(h)
        s["orders"] += 1
        s["sum"]["orders"] += 1


def main(argv):
    if len(argv) >= 2 and argv[0] == "--log":
        records = json.load(open(argv[1]))["records"]
        draw = json.load(open(argv[3])) if len(argv) >= 4 and argv[2] == "--draw" else None
        name = argv[1]
    elif len(argv) == 2:
        records, draw = fetch(argv[0], argv[1])
        name = argv[1]
    else:
        raise SystemExit(__doc__)
    try:
        sm = check(records, draw)
    except Broken as e:
        print(f"line of {name}: {e}", file=sys.stderr)
        return 1
    print(f"line of {name} checks out: {len(records)} records; {sm['steps']} steps, {sm['offers']} offers in draw order, "
          f"{sm['passes']} passes, {sm['lapses']} lapses, {sm['rejoins']} back at the end, {sm['orders']} orders")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
