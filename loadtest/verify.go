package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Verification is the outcome check of a sale after a run.
type Verification struct {
	Passed    bool           `json:"passed"`
	Drained   bool           `json:"drained"` // the queue emptied before the timeout
	Wait      time.Duration  `json:"wait"`
	Stock     int64          `json:"stock"`
	Confirmed int64          `json:"confirmed"` // as the gate counts them
	Admitted  int            `json:"admitted"`  // distinct order ids answered 202 (or, with PreferWait, decided)
	ByStatus  map[string]int `json:"by_status"` // of those ids
	// Violations, each with the ids involved (at most 20 listed each).
	Oversold     bool     `json:"oversold,omitempty"`
	Lost         []string `json:"lost,omitempty"`          // 202 but neither confirmed nor rejected
	DoubleBuyers []string `json:"double_buyers,omitempty"` // buyers holding two confirmed orders
	KeyMismatch  []string `json:"key_mismatch,omitempty"`  // one key, several order ids
	Problems     []string `json:"problems,omitempty"`
	// Variants are a sale with variants' outcomes, by variant.
	Variants map[string]VariantOutcome `json:"variants,omitempty"`
	// VariantMismatch: an order in another variant than its buyer asked
	// for; VariantShort: a sold-out sale with a variant that did not
	// sell exactly its stock.
	VariantMismatch bool `json:"variant_mismatch,omitempty"`
	VariantShort    bool `json:"variant_short,omitempty"`
}

// VariantOutcome is one variant's outcome: its stock and the orders of
// it, as the check counts them and as the gate does.
type VariantOutcome struct {
	Stock     int64 `json:"stock"`
	Confirmed int64 `json:"confirmed"` // of the generator's orders, by their status
	Admitted  int64 `json:"admitted"`  // the gate's count: orders of it in the ledger
	Released  int64 `json:"released"`  // the gate's count: orders of it that gave their item back
	Remaining int64 `json:"remaining"`
}

// Admission is what the check needs of each 202 answer.
type Admission struct {
	OrderID string
	Buyer   string
	Key     string
	// Variant is the variant the order was placed for (sale with variants).
	Variant string
}

// Verify waits (up to timeout) for the sale's queue to drain and then
// proves: confirmed <= stock; every order answered 202 is confirmed or
// rejected; no buyer holds two confirmed orders (the sale allows one);
// every Idempotency-Key got one order id.
func Verify(ctx context.Context, client *http.Client, target, sale string, admitted []Admission, perBuyer int64, timeout time.Duration) Verification {
	v := Verification{ByStatus: map[string]int{}}
	base := strings.TrimRight(target, "/")
	start := time.Now()
	deadline := start.Add(timeout)
	var st saleState
	for {
		var err error
		st, err = getSale(ctx, client, base, sale)
		if err == nil && st.QueueDepth == 0 {
			v.Drained = true
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("the queue did not drain within %v (queue depth %d, %v)", timeout, st.QueueDepth, err))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	v.Wait = time.Since(start)
	v.Stock, v.Confirmed = st.Stock, st.Confirmed

	ids := map[string]Admission{}
	byKey := map[string]map[string]bool{}
	for _, a := range admitted {
		ids[a.OrderID] = a
		if a.Key != "" {
			if byKey[a.Key] == nil {
				byKey[a.Key] = map[string]bool{}
			}
			byKey[a.Key][a.OrderID] = true
		}
	}
	v.Admitted = len(ids)
	statuses := orderStatuses(ctx, client, base, ids)
	confirmedBy := map[string][]string{}
	confirmed := int64(0)
	for id, o := range statuses {
		s := o.Status
		v.ByStatus[s]++
		switch s {
		case "confirmed":
			confirmed++
			b := ids[id].Buyer
			confirmedBy[b] = append(confirmedBy[b], id)
		case "rejected":
		default:
			v.Lost = append(v.Lost, id+" ("+s+")")
		}
	}
	if st.Stock > 0 && (confirmed > st.Stock || st.Confirmed > st.Stock) {
		v.Oversold = true
		v.Problems = append(v.Problems, fmt.Sprintf("oversold: %d confirmed (gate counts %d), stock %d", confirmed, st.Confirmed, st.Stock))
	}
	if perBuyer <= 0 {
		perBuyer = 1
	}
	for b, list := range confirmedBy {
		if int64(len(list)) > perBuyer {
			v.DoubleBuyers = append(v.DoubleBuyers, b+": "+strings.Join(list, ","))
		}
	}
	for k, set := range byKey {
		if len(set) > 1 {
			var list []string
			for id := range set {
				list = append(list, id)
			}
			sort.Strings(list)
			v.KeyMismatch = append(v.KeyMismatch, k+": "+strings.Join(list, ","))
		}
	}
	sort.Strings(v.Lost)
	sort.Strings(v.DoubleBuyers)
	sort.Strings(v.KeyMismatch)
	v.checkVariants(st, ids, statuses)
	v.Passed = v.Drained && !v.Oversold && !v.VariantMismatch && !v.VariantShort && len(v.Lost) == 0 && len(v.DoubleBuyers) == 0 && len(v.KeyMismatch) == 0
	return v
}

// checkVariants checks a sale with variants variant by variant, each
// order counted in the variant the gate's ledger says it took (GET
// /v1/orders/{id}), which must be the one its buyer asked for: no
// variant has more confirmed orders than its stock, nor more in the
// ledger than its stock and released orders; and when every variant is
// sold out, each without a released order holds exactly its stock, and
// (the generator the sale's only client, nothing refused) has exactly
// its stock of our orders confirmed. One order per buyer across the
// variants is the buyers' check above, which counts a buyer's confirmed
// orders over every variant.
func (v *Verification) checkVariants(st saleState, ids map[string]Admission, statuses map[string]orderAnswer) {
	if len(st.Variants) == 0 {
		return
	}
	v.Variants = map[string]VariantOutcome{}
	for name, vs := range st.Variants {
		v.Variants[name] = VariantOutcome{Stock: vs.Stock, Admitted: vs.Admitted, Released: vs.Released, Remaining: vs.Remaining}
	}
	var wrong []string
	for id, a := range statuses {
		if a.Status == "missing" {
			continue
		}
		if asked := ids[id].Variant; asked != "" && a.Variant != asked {
			wrong = append(wrong, fmt.Sprintf("%s (asked %s, took %q)", id, asked, a.Variant))
		}
		o, known := v.Variants[a.Variant]
		if !known {
			wrong = append(wrong, fmt.Sprintf("%s (variant %q not of the sale)", id, a.Variant))
			continue
		}
		if a.Status == "confirmed" {
			o.Confirmed++
			v.Variants[a.Variant] = o
		}
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		if len(wrong) > 5 {
			wrong = append(wrong[:5], fmt.Sprintf("and %d more", len(wrong)-5))
		}
		v.Problems = append(v.Problems, "orders in another variant than asked: "+strings.Join(wrong, ", "))
		v.VariantMismatch = true
	}
	refused := v.ByStatus["rejected"] + v.ByStatus["failed"] + v.ByStatus["cancelled"]
	ours := int64(len(ids)) // all the sale's orders, when the generator was its only client
	names := make([]string, 0, len(v.Variants))
	for name := range v.Variants {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		o := v.Variants[name]
		switch {
		case o.Confirmed > o.Stock:
			v.Oversold = true
			v.Problems = append(v.Problems, fmt.Sprintf("variant %s oversold: %d confirmed, stock %d", name, o.Confirmed, o.Stock))
		case o.Admitted-o.Released > o.Stock:
			v.Oversold = true
			v.Problems = append(v.Problems, fmt.Sprintf("variant %s oversold: the gate holds %d orders (%d released), stock %d", name, o.Admitted, o.Released, o.Stock))
		case st.State == "sold_out" && o.Released == 0 && o.Admitted != o.Stock:
			v.VariantShort = true
			v.Problems = append(v.Problems, fmt.Sprintf("variant %s: sold out with %d orders in the ledger, stock %d", name, o.Admitted, o.Stock))
		case st.State == "sold_out" && refused == 0 && ours == st.Admitted && o.Confirmed != o.Stock:
			v.VariantShort = true
			v.Problems = append(v.Problems, fmt.Sprintf("variant %s: sold out with %d of our orders confirmed, stock %d", name, o.Confirmed, o.Stock))
		}
	}
}

// orderAnswer is what the check reads of GET /v1/orders/{id}.
type orderAnswer struct {
	Status  string `json:"status"`
	Variant string `json:"variant"`
}

type saleState struct {
	State      string `json:"state"`
	Stock      int64  `json:"stock"`
	Remaining  int64  `json:"remaining"`
	Admitted   int64  `json:"admitted"`
	Confirmed  int64  `json:"confirmed"`
	QueueDepth int64  `json:"queue_depth"`
	PerBuyer   int64  `json:"per_buyer"`
	Variants   map[string]struct {
		Stock     int64 `json:"stock"`
		Admitted  int64 `json:"admitted"`
		Released  int64 `json:"released"`
		Remaining int64 `json:"remaining"`
	} `json:"variants"`
}

func getSale(ctx context.Context, client *http.Client, base, sale string) (saleState, error) {
	var st saleState
	err := getJSON(ctx, client, base+"/v1/sales/"+url.PathEscape(sale), &st)
	return st, err
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var problem struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(body, &problem)
		return &statusError{url: u, code: resp.StatusCode, reason: problem.Reason}
	}
	return json.Unmarshal(body, v)
}

// orderStatuses reads each order's status, 32 at a time; an order the
// gate cannot show reads "missing".
func orderStatuses(ctx context.Context, client *http.Client, base string, ids map[string]Admission) map[string]orderAnswer {
	out := make(map[string]orderAnswer, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var o orderAnswer
			if err := getJSON(ctx, client, base+"/v1/orders/"+url.PathEscape(id), &o); err != nil || o.Status == "" {
				o = orderAnswer{Status: "missing"}
			}
			mu.Lock()
			out[id] = o
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// WriteText writes the check's verdict.
func (v *Verification) WriteText(w io.Writer) {
	verdict := "PASSED"
	if !v.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "Outcome check %s  [admitted ids, confirmed, stock, drained in]  %d, %d, %d, %v\n",
		verdict, v.Admitted, v.Confirmed, v.Stock, v.Wait.Round(time.Millisecond))
	fmt.Fprintf(w, "  statuses of admitted orders  %s\n", countsInt(v.ByStatus))
	for _, p := range v.Problems {
		fmt.Fprintf(w, "  ✗ %s\n", p)
	}
	list := func(name string, ids []string) {
		if len(ids) == 0 {
			return
		}
		fmt.Fprintf(w, "  ✗ %s: %d\n", name, len(ids))
		for i, id := range ids {
			if i == 20 {
				fmt.Fprintf(w, "      … and %d more\n", len(ids)-20)
				break
			}
			fmt.Fprintf(w, "      %s\n", id)
		}
	}
	if t := v.variantsText(); t != "" {
		fmt.Fprintf(w, "  variants, confirmed of stock  %s\n", t)
	}
	list("lost orders (answered 202, neither confirmed nor rejected)", v.Lost)
	list("buyers with more confirmed orders than allowed", v.DoubleBuyers)
	list("Idempotency-Keys answered with different order ids", v.KeyMismatch)
}

func countsInt(m map[string]int) string {
	u := map[string]uint64{}
	for k, v := range m {
		u[k] = uint64(v)
	}
	return counts(u)
}

// statusError is an answer other than 200.
type statusError struct {
	url    string
	code   int
	reason string // the problem document's, when it was one
}

func (e *statusError) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("GET %s: %d %s", e.url, e.code, e.reason)
	}
	return fmt.Sprintf("GET %s: %d", e.url, e.code)
}

// variantsText is each variant's confirmed orders of its stock, "us10
// 20/20, us9 10/10"; "" for a sale without variants.
func (v *Verification) variantsText() string {
	names := make([]string, 0, len(v.Variants))
	for n := range v.Variants {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		o := v.Variants[n]
		parts = append(parts, fmt.Sprintf("%s %d/%d", n, o.Confirmed, o.Stock))
	}
	return strings.Join(parts, ", ")
}
