// Command gendashboards writes sluice's Grafana dashboards into
// dashboards/ (run by go generate there). The JSON files are what ships;
// this program keeps their layout, datasource references and selectors
// consistent. Edit here, run go generate ./dashboards, commit both.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	dir := flag.String("dir", ".", "directory to write the dashboards into")
	flag.Parse()
	for _, d := range dashboards() {
		b, err := render(d)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(*dir, fileName(d)), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func fileName(b *builder) string { return strings.TrimPrefix(b.uid, "sluice-") + ".json" }

func render(b *builder) ([]byte, error) {
	d, err := b.build()
	if err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", b.uid, err)
	}
	// The SDK puts dashboard links in the controls menu by default (a
	// Grafana 12.4 placement); sluice's link between its dashboards stays
	// in the top bar, where Grafana puts links without a placement.
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func dashboards() []*builder {
	return []*builder{overview(), admission(), drain(), loadtest()}
}

// Selectors. Gate series carry instance and sale; some carry only instance.
const (
	gs   = `instance=~"$instance", sale=~"$sale"`
	inst = `instance=~"$instance"`
	ri   = `[$__rate_interval]`
)

func sel(extra string) string { return "{" + gs + extra + "}" }

var (
	saleVar = queryVar("sale", "Sale", `label_values(sluice_sale_stock{instance=~"$instance"}, sale)`,
		"Sales known to the selected gates.")
	// variantVar: the variants of the selected sales with variants (at
	// most 64 a sale); the per-variant panels repeat over it.
	variantVar = queryVar("variant", "Variant", `label_values(sluice_sale_variant_stock{instance=~"$instance", sale=~"$sale"}, variant)`,
		"Variants (sizes, colours) of the selected sales with variants.")
	instanceVar = queryVar("instance", "Instance", "label_values(sluice_build_info, instance)",
		"sluice processes (gates and drainers), by their scrape address.")
)

// The sale's lifecycle as one number per sale, for a state timeline.
var lifecycle = `
  max by (sale) (sluice_sale_state{` + gs + `, state="upcoming"}) * 1
+ max by (sale) (sluice_sale_state{` + gs + `, state="open"}) * 2
+ max by (sale) (sluice_sale_state{` + gs + `, state="sold_out"}) * 3
+ max by (sale) (sluice_sale_state{` + gs + `, state="closed"}) * 4`

var lifecycleText = valueText(1, "upcoming", "blue", 2, "open", "green", 3, "sold out", "orange", 4, "closed", "purple")

var outcomeColors = colors("admitted.*", "green", "diverted.*", "orange", "rejected.*", "purple", "failed.*", "red")

func quantiles(metric, by, selector string, qs ...string) []q {
	var out []q
	for _, x := range qs {
		legend := "p" + strings.TrimPrefix(x, "0.")
		if by != "" {
			legend = "{{" + by + "}} " + legend
		}
		grp := "le"
		if by != "" {
			grp = by + ", le"
		}
		out = append(out, q{fmt.Sprintf("histogram_quantile(%s, sum by (%s) (rate(%s_bucket{%s}%s)))", x, grp, metric, selector, ri), legend})
	}
	return out
}

func overview() *builder {
	b := newDashboard("sluice-overview", "sluice — flash sale overview",
		"A drop at a glance: what is offered, what gets in, why the rest is diverted, stock, queue and confirmations.",
		instanceVar, saleVar, variantVar)
	req := "sluice_admission_requests_total"
	b.add(4, 4, statPanel("Sale state", "The sale's lifecycle: upcoming, open, sold out, closed.", "none",
		[]q{{lifecycle, "{{sale}}"}}, mapped(lifecycleText)))
	b.add(4, 4, statPanel("Stock left", "Stock not yet taken by an admitted order.", "short",
		[]q{{`min by (sale) (sluice_sale_stock_remaining` + sel("") + `)`, "{{sale}}"}}))
	b.add(4, 4, statPanel("Orders confirmed", "Orders the backend confirmed (exact; from the decisions stream).", "short",
		[]q{{`max by (sale) (sluice_sale_confirmed_orders` + sel("") + `)`, "{{sale}}"}}))
	b.add(4, 4, statPanel("Queue depth", "Admitted orders the drain has not finished.", "short",
		[]q{{`max by (sale) (sluice_sale_queue_depth` + sel("") + `)`, "{{sale}}"}}))
	b.add(4, 4, statPanel("Diverted share", "Share of order requests answered sold out, busy, too early/late or already ordered.", "percentunit",
		[]q{{`sum(rate(` + req + sel(`, outcome="diverted"`) + ri + `)) / sum(rate(` + req + sel("") + ri + `))`, "diverted"}},
		warnAbove(0.5, 0.9)))
	b.add(4, 4, statPanel("p99 admission latency", "99th percentile time from request to answer, all outcomes.", "s",
		[]q{{`histogram_quantile(0.99, sum by (le) (rate(sluice_admission_duration_seconds_bucket{` + inst + `}` + ri + `)))`, "p99"}},
		warnAbove(0.05, 0.25)))
	b.add(24, 4, stateTimeline("Sale lifecycle", "When each sale opened, sold out and closed.",
		[]q{{lifecycle, "{{sale}}"}}, lifecycleText))
	b.add(12, 8, seriesPanel("Offered vs admitted", "Order requests per second reaching the gates, and the part admitted into the queue.", "reqps",
		[]q{
			{`sum by (sale) (rate(` + req + sel("") + ri + `))`, "{{sale}} offered"},
			{`sum by (sale) (rate(` + req + sel(`, outcome="admitted"`) + ri + `))`, "{{sale}} admitted"},
			{`sum by (sale) (rate(sluice_drain_orders_total` + sel(`, outcome="confirmed"`) + ri + `))`, "{{sale}} confirmed"},
		}, colors(".* offered", "blue", ".* admitted", "green", ".* confirmed", "dark-green"), minZero))
	b.add(12, 8, seriesPanel("Why the rest was diverted", "Answers other than admitted, per second, by reason.", "reqps",
		[]q{{`sum by (reason) (rate(` + req + sel(`, outcome!="admitted"`) + ri + `))`, "{{reason}}"}},
		stacked, minZero))
	b.add(8, 8, seriesPanel("Stock left and confirmed", "Stock not yet admitted, orders the backend confirmed, and orders that gave their slot back to be sold again (rejected, dead-lettered), against the sale's stock.", "short",
		[]q{
			{`max by (sale) (sluice_sale_stock` + sel("") + `)`, "{{sale}} stock"},
			{`min by (sale) (sluice_sale_stock_remaining` + sel("") + `)`, "{{sale}} left"},
			{`max by (sale) (sluice_sale_confirmed_orders` + sel("") + `)`, "{{sale}} confirmed"},
			{`max by (sale) (sluice_sale_released_orders` + sel("") + `)`, "{{sale}} released"},
		}, dashed(".* stock"), minZero))
	b.add(8, 8, seriesPanel("Queue depth", "Admitted orders waiting for the backend, against the bound at which gates answer busy.", "short",
		[]q{
			{`max by (sale) (sluice_sale_queue_depth` + sel("") + `)`, "{{sale}} depth"},
			{`max by (sale) (sluice_sale_queue_bound` + sel("") + `) > 0`, "{{sale}} bound"},
		}, dashed(".* bound"), minZero))
	b.add(8, 8, seriesPanel("Admission latency", "Time from request to answer at the gates.", "s",
		quantiles("sluice_admission_duration_seconds", "", inst, "0.5", "0.99"), minZero))

	// A sale with variants: a panel per variant, repeated over the
	// variant variable; every gate counts the same ledger (max, min).
	vs := `{` + gs + `, variant=~"$variant"}`
	b.row("Variants")
	b.add(6, 7, seriesPanel("Variant $variant", "One variant of a sale with variants: its stock, what is left of it, its orders in the ledger and those that gave their item back to it (rejected, cancelled). Sold out at 0 left; the sale is sold out when every variant is.", "short",
		[]q{
			{`max by (sale) (sluice_sale_variant_stock` + vs + `)`, "{{sale}} stock"},
			{`min by (sale) (sluice_sale_variant_stock_remaining` + vs + `)`, "{{sale}} left"},
			{`max by (sale) (sluice_sale_variant_admitted_orders` + vs + `)`, "{{sale}} admitted"},
			{`max by (sale) (sluice_sale_variant_released_orders` + vs + `)`, "{{sale}} released"},
		}, dashed(".* stock"), minZero, repeated("variant", 4)))

	// The waiting rooms: every gate follows the same durable line, so
	// its figures are the same on every gate (max), polls and joins are
	// each gate's own (sum).
	b.row("Waiting room")
	b.add(6, 4, statPanel("In line", "Tickets in the sale's waiting-room line.", "short",
		[]q{{`max by (sale) (sluice_line_tickets` + sel("") + `)`, "{{sale}}"}}))
	b.add(6, 4, statPanel("Let in", "Positions that had their turn (were issued a pass).", "short",
		[]q{{`max by (sale) (sluice_line_let_in` + sel("") + `)`, "{{sale}}"}}))
	b.add(6, 4, statPanel("Passes outstanding", "Passes issued, not used for an order, not expired: never more than the stock left.", "short",
		[]q{{`max by (sale) (sluice_line_passes_outstanding` + sel("") + `)`, "{{sale}}"}}))
	b.add(6, 4, statPanel("Polls per second", "Ticket polls the gates answer from memory.", "reqps",
		[]q{{`sum(rate(sluice_line_polls_total` + sel("") + ri + `))`, "polls"}}))
	b.add(8, 8, seriesPanel("The line", "Tickets in line, how many were drawn at the start, and the position let in through.", "short",
		[]q{
			{`max by (sale) (sluice_line_tickets` + sel("") + `)`, "{{sale}} in line"},
			{`max by (sale) (sluice_line_drawn_tickets` + sel("") + `)`, "{{sale}} drawn"},
			{`max by (sale) (sluice_line_let_in` + sel("") + `)`, "{{sale}} let in"},
		}, minZero))
	b.add(8, 8, seriesPanel("Passes", "Passes issued per second, those outstanding, and those expired unused so far.", "short",
		[]q{
			{`max by (sale) (rate(sluice_line_passes_issued_total` + sel("") + ri + `))`, "{{sale}} issued/s"},
			{`max by (sale) (sluice_line_passes_expired` + sel("") + `)`, "{{sale}} expired"},
			{`max by (sale) (sluice_line_passes_outstanding` + sel("") + `)`, "{{sale}} outstanding"},
		}, minZero))
	b.add(8, 8, seriesPanel("Joins and polls", "Requests to join the line per second by outcome, and ticket polls per second.", "reqps",
		[]q{
			{`sum by (outcome) (rate(sluice_line_joins_total` + sel("") + ri + `))`, "join {{outcome}}"},
			{`sum(rate(sluice_line_polls_total` + sel("") + ri + `))`, "polls"},
		}, minZero))
	// Turns: offered ahead of the stock, claimed by those there, lapsed
	// when nobody came (their room goes on at once), and the holders put
	// at the back when they came back too late.
	b.add(24, 8, seriesPanel("Turns: claimed, lapsed, back in line", "Turns claimed per second and lapsed so far (following the durable records: the same on every gate), holders put at the back after a lapse, and the position offered through against let in: offers run ahead by the share of holders who come.", "short",
		[]q{
			{`max by (sale) (rate(sluice_line_claims_total` + sel("") + ri + `))`, "{{sale}} claimed/s"},
			{`max by (sale) (sluice_line_lapsed_turns` + sel("") + `)`, "{{sale}} lapsed"},
			{`max by (sale) (rate(sluice_line_rejoins_total` + sel("") + ri + `))`, "{{sale}} back in line/s"},
			{`max by (sale) (sluice_line_offered` + sel("") + `) - max by (sale) (sluice_line_let_in` + sel("") + `)`, "{{sale}} offered ahead"},
		}, minZero))
	// Who may join: the proofs of work the gates checked, and each gate's
	// tickets in memory against its --line-max-tickets.
	b.add(12, 8, seriesPanel("Proofs of work", "Proofs checked on joins per second: ok, missing (428), bad or used (403). Many used or bad: someone replays or forges solutions.", "reqps",
		[]q{{`sum by (outcome) (rate(sluice_line_proofs_total{` + inst + `}` + ri + `))`, "{{outcome}}"}}, minZero))
	b.add(12, 8, seriesPanel("Tickets held in memory", "Tickets each gate holds over every line, against its --line-max-tickets: past it joins are answered 503.", "short",
		[]q{
			{`sluice_line_held_tickets{` + inst + `}`, "{{instance}} held"},
			{`sluice_line_max_tickets{` + inst + `}`, "{{instance}} cap"},
		}, dashed(".* cap"), minZero))
	return b
}

func admission() *builder {
	b := newDashboard("sluice-admission", "sluice — admission and throttling",
		"Every answer the gates gave and why; the limiters; latency; JetStream publishes.",
		instanceVar, saleVar)
	req := "sluice_admission_requests_total"
	b.add(24, 9, seriesPanel("Answers by outcome and reason", "Order requests per second, stacked by outcome · reason.", "reqps",
		[]q{{`sum by (outcome, reason) (rate(` + req + sel("") + ri + `)) > 0`, "{{outcome}} · {{reason}}"}},
		stacked, outcomeColors, minZero))
	b.add(12, 8, seriesPanel("Admitted rate vs rate limit", "Admissions per second against the sale's configured rate, summed over gates (the limit is per gate).", "reqps",
		[]q{
			{`sum by (sale) (rate(` + req + sel(`, outcome="admitted"`) + ri + `))`, "{{sale}} admitted"},
			{`sum by (sale) (sluice_sale_rate_limit` + sel("") + `) > 0`, "{{sale}} limit"},
		}, dashed(".* limit"), minZero))
	b.add(12, 8, seriesPanel("Throttled", "Answered busy per second, by which limit: the sale's rate, the client address's, the buyer's, or the queue bound.", "reqps",
		[]q{{`sum by (reason) (rate(` + req + sel(`, reason=~"rate_limited|ip_rate_limited|buyer_rate_limited|queue_full"`) + ri + `))`, "{{reason}}"}},
		stacked, minZero))
	b.add(8, 8, seriesPanel("Limiter keys held", "Client addresses and buyers the keyed limiters remember, against their bound.", "short",
		[]q{
			{`sum by (limiter) (sluice_limiter_keys{` + inst + `})`, "{{limiter}} keys"},
			{`sum by (limiter) (sluice_limiter_keys_max{` + inst + `})`, "{{limiter}} max"},
		}, dashed(".* max"), minZero))
	b.add(8, 8, seriesPanel("Limiter evictions", "Keys forgotten per second to stay within the bound or because they were idle.", "ops",
		[]q{{`sum by (limiter) (rate(sluice_limiter_evictions_total{` + inst + `}` + ri + `))`, "{{limiter}}"}}, minZero))
	b.add(8, 8, seriesPanel("Bad requests", "Requests refused as malformed, oversized or naming no sale, per second, by reason.", "reqps",
		[]q{{`sum by (reason) (rate(` + req + `{` + inst + `, outcome="rejected"}` + ri + `))`, "{{reason}}"}},
		stacked, minZero))
	b.add(12, 9, heatmapPanel("Admission latency heatmap", "Answers per second by time to answer.", "s",
		`sum by (le) (rate(sluice_admission_duration_seconds_bucket{`+inst+`}`+ri+`))`))
	b.add(12, 9, seriesPanel("Admission latency by outcome", "Median and 99th percentile time to answer, by outcome.", "s",
		quantiles("sluice_admission_duration_seconds", "outcome", inst, "0.5", "0.99"), minZero))
	b.add(8, 8, seriesPanel("JetStream publish latency", "Time from publishing an admitted order to its PubAck.", "s",
		quantiles("sluice_ledger_publish_duration_seconds", "", inst, "0.5", "0.99", "0.999"), minZero))
	b.add(8, 8, seriesPanel("JetStream publish errors", "Publishes JetStream did not store (unavailable, store full), per second. Each was answered 503.", "ops",
		[]q{{`sum by (kind) (rate(sluice_ledger_publish_errors_total{` + inst + `}` + ri + `))`, "{{kind}}"}},
		colors(".*", "red"), minZero))
	b.add(8, 8, stateTimeline("JetStream reachable", "Whether each gate's last refresh of sale states from JetStream succeeded.",
		[]q{{`min by (instance) (sluice_ledger_up{` + inst + `})`, "{{instance}}"}},
		valueText(0, "down", "red", 1, "up", "green")))
	b.add(12, 8, seriesPanel("Held for a decision (Prefer: wait)", "Requests each gate holds until their order is decided, against --max-waiters (past it, 202 at once).", "short",
		[]q{
			{`sum by (instance) (sluice_order_waiters{` + inst + `})`, "{{instance}} held"},
			{`sum by (instance) (sluice_order_waiters_max{` + inst + `})`, "{{instance}} max"},
		}, dashed(".* max"), minZero))
	b.add(12, 8, seriesPanel("How waits ended", "Held requests per second by how their wait ended: decided (201 or the refusal), timeout (202), refused (too many held: 202 at once), shutdown.", "reqps",
		[]q{{`sum by (outcome) (rate(sluice_order_waits_total{` + inst + `}` + ri + `)) > 0`, "{{outcome}}"}},
		stacked, colors("decided", "green", "timeout", "yellow", "refused", "orange", "shutdown", "purple"), minZero))
	b.row("Process")
	b.add(6, 7, seriesPanel("Other API requests", "Requests to the public API other than order placements, by status code.", "reqps",
		[]q{{`sum by (code) (rate(sluice_http_requests_total{` + inst + `}` + ri + `))`, "{{code}}"}}, minZero))
	b.add(6, 7, seriesPanel("CPU", "CPU time used per second (1 = one core).", "percentunit",
		[]q{{`rate(process_cpu_seconds_total{` + inst + `}` + ri + `)`, "{{instance}}"}}, minZero))
	b.add(6, 7, seriesPanel("Memory", "Resident memory and Go heap in use.", "bytes",
		[]q{
			{`process_resident_memory_bytes{` + inst + `}`, "{{instance}} resident"},
			{`go_memstats_heap_inuse_bytes{` + inst + `}`, "{{instance}} heap"},
		}, minZero))
	b.add(6, 7, seriesPanel("Goroutines", "Goroutines per process: bounded whatever the load.", "short",
		[]q{{`go_goroutines{` + inst + `}`, "{{instance}}"}}, minZero))
	// Only gates started with --tls-cert/--tls-key have these series; a
	// gate behind a TLS-terminating proxy shows "no TLS" instead of a
	// misleading zero.
	b.add(12, 5, statPanel("TLS certificate expires in", "Time left until each gate's public TLS certificate expires (its NotAfter). Orange under 14 days, red under 7: renew the files and send SIGHUP (docs/deploying.md).", "dtdurations",
		[]q{{`min by (instance) (sluice_tls_certificate_expiry_timestamp_seconds{` + inst + `}) - time()`, "{{instance}}"}},
		warnBelow(7*day, 14*day), noValue("no TLS")))
	b.add(12, 5, statPanel("TLS reloads failed", "Certificate reloads (SIGHUP) refused in the dashboard's time range: the files did not make a valid pair and the previous certificate is still served.", "short",
		[]q{{`sum by (instance) (increase(sluice_tls_reloads_total{` + inst + `, outcome="error"}[$__range]))`, "{{instance}}"}},
		warnAbove(1, 1), noValue("no TLS")))
	// Only gates verifying the shop's buyer tokens have these series
	// (the read and its age: with --buyer-token-jwks only).
	b.add(8, 5, stateTimeline("Buyer-token keys", "Whether each gate can check the shop's buyer tokens. none: it never read the shop's JWKS; every order and join with a token is answered 503 buyer_keys_unavailable and /readyz is not ready.",
		[]q{{`min by (instance) (sluice_buyer_token_keys_up{` + inst + `})`, "{{instance}}"}},
		valueText(0, "none", "red", 1, "held", "green")))
	b.add(8, 5, statPanel("Shop's JWKS read", "Time since each gate last read the shop's JWKS (refreshed every 5 minutes). Orange past 15 minutes, red past an hour: a key the shop rotates in is refused until it is read.", "s",
		[]q{{`time() - max by (instance) (sluice_buyer_token_keys_fetched_timestamp_seconds{` + inst + `} > 0)`, "{{instance}}"}},
		warnAbove(900, 3600), noValue("no JWKS read")))
	b.add(8, 5, statPanel("JWKS reads failed", "Reads of the shop's JWKS that failed in the dashboard's time range (at the start, the retries until it is read, refreshes, tokens naming a key not held); the gate's log says why.", "short",
		[]q{{`sum by (instance) (increase(sluice_buyer_token_key_fetches_total{` + inst + `, outcome="error"}[$__range]))`, "{{instance}}"}},
		warnAbove(1, 1), noValue("no JWKS")))
	return b
}

const day = 24 * 60 * 60

func drain() *builder {
	b := newDashboard("sluice-drain", "sluice — queue and drain",
		"The queue behind the gates and the drain that empties it into the backend.",
		instanceVar, saleVar)
	drained := "sluice_drain_orders_total"
	b.add(6, 4, statPanel("Queue depth", "Admitted orders the drain has not finished.", "short",
		[]q{{`max by (sale) (sluice_sale_queue_depth` + sel("") + `)`, "{{sale}}"}}))
	b.add(6, 4, statPanel("Estimated wait", "Time to drain the whole queue at the observed drain rate.", "s",
		[]q{{`max by (sale) (sluice_sale_estimated_wait_seconds` + sel("") + `)`, "{{sale}}"}}, warnAbove(30, 300)))
	b.add(6, 4, statPanel("Drained", "Orders finished per second (confirmed, rejected, dead-lettered).", "ops",
		[]q{{`sum(rate(` + drained + sel(`, outcome=~"confirmed|rejected|dead_lettered"`) + ri + `))`, "drained"}}))
	b.add(6, 4, statPanel("Dead letters", "Orders given up on in the dashboard's time range.", "short",
		[]q{{`sum(increase(sluice_drain_dead_letters_total` + sel("") + `[$__range]))`, "dead letters"}}, warnAbove(1, 10)))
	b.add(12, 8, seriesPanel("Queue depth vs bound", "Admitted orders not yet finished, against the bound at which gates answer busy.", "short",
		[]q{
			{`max by (sale) (sluice_sale_queue_depth` + sel("") + `)`, "{{sale}} depth"},
			{`max by (sale) (sluice_sale_queue_bound` + sel("") + `) > 0`, "{{sale}} bound"},
		}, dashed(".* bound"), minZero))
	b.add(12, 8, seriesPanel("Consumer pending and ack-pending", "Orders not yet delivered to the drain, and delivered but not yet acknowledged.", "short",
		[]q{
			{`max by (sale) (sluice_drain_consumer_pending` + sel("") + `)`, "{{sale}} pending"},
			{`max by (sale) (sluice_drain_consumer_ack_pending` + sel("") + `)`, "{{sale}} ack pending"},
		}, minZero))
	b.add(12, 8, seriesPanel("Drain rate by outcome", "Orders per second the drain finished, or sent back to retry.", "ops",
		[]q{
			{`sum by (sale, outcome) (rate(` + drained + sel("") + ri + `))`, "{{sale}} {{outcome}}"},
			{`max by (sale) (sluice_sale_drain_rate` + sel("") + `)`, "{{sale}} seen by gates"},
		}, colors(".* confirmed", "green", ".* rejected", "purple", ".* retried", "yellow", ".* dead_lettered", "red"),
		dashed(".* seen by gates"), minZero))
	b.add(12, 8, seriesPanel("Estimated wait", "How long the queue takes at the observed drain rate: what a buyer at the back waits, against the sale's max_wait (the gates bound the queue so that it holds).", "s",
		[]q{
			{`max by (sale) (sluice_sale_estimated_wait_seconds` + sel("") + `)`, "{{sale}}"},
			{`max by (sale) (sluice_sale_max_wait_seconds` + sel("") + `) > 0`, "{{sale}} max_wait"},
		}, dashed(".* max_wait"), minZero))
	b.add(12, 8, seriesPanel("Orders to the backend vs its pace", "Orders per second the drain sent to the backend, against the sale's backend_rate and the process's --backend-rate.", "ops",
		[]q{
			{`sum by (sale) (rate(` + drained + sel(`, outcome=~"confirmed|rejected|retried"`) + ri + `))`, "{{sale}} sent"},
			{`max by (sale) (sluice_sale_backend_rate` + sel("") + `) > 0`, "{{sale}} backend_rate"},
			{`sum(sluice_drain_backend_rate_limit{` + inst + `}) > 0`, "--backend-rate"},
		}, dashed(".*backend.rate"), minZero))
	b.add(12, 8, seriesPanel("Waiting for the pace", "Seconds per second batches spent waiting for the backend's pace before their call: above zero, the pace, not the backend, sets the drain rate.", "s",
		[]q{{`sum by (instance) (rate(sluice_drain_pace_wait_seconds_total{` + inst + `}` + ri + `))`, "{{instance}}"}}, minZero))
	b.add(8, 8, seriesPanel("Workers in flight vs bound", "Backend calls under way, against --workers.", "short",
		[]q{
			{`sum(sluice_drain_workers_busy{` + inst + `})`, "busy"},
			{`sum(sluice_drain_workers_max{` + inst + `})`, "bound"},
		}, dashed("bound"), minZero))
	b.add(8, 8, seriesPanel("Batch size", "Orders per fetched batch.", "short",
		append(quantiles("sluice_drain_batch_size", "", inst, "0.5", "0.99"),
			q{`sum(rate(sluice_drain_batch_size_sum{` + inst + `}` + ri + `)) / sum(rate(sluice_drain_batch_size_count{` + inst + `}` + ri + `))`, "mean"}),
		minZero))
	b.add(8, 8, seriesPanel("Backend latency", "Time of one backend call (a batch), by result.", "s",
		quantiles("sluice_drain_backend_duration_seconds", "result", inst, "0.5", "0.99"), minZero))
	b.add(8, 8, seriesPanel("Backend calls by result", "Backend calls per second; errors are retried with backoff.", "ops",
		[]q{{`sum by (result) (rate(sluice_drain_backend_duration_seconds_count{` + inst + `}` + ri + `))`, "{{result}}"}},
		colors("ok", "green", "error", "red"), minZero))
	b.add(8, 8, seriesPanel("Redeliveries", "Orders received again after an earlier delivery was not acknowledged, per second.", "ops",
		[]q{{`sum(rate(sluice_drain_redeliveries_total{` + inst + `}` + ri + `))`, "redeliveries"}}, minZero))
	b.add(8, 8, seriesPanel("Dead letters", "Orders sent to the dead-letter stream per interval, by sale.", "short",
		[]q{{`sum by (sale) (increase(sluice_drain_dead_letters_total` + sel("") + ri + `))`, "{{sale}}"}},
		colors(".*", "red"), minZero))
	b.row("Backend pool and bookkeeping")
	b.add(8, 7, seriesPanel("Backend connections", "The SQL backend's connection pool (SQLite, PostgreSQL).", "short",
		[]q{
			{`sum by (instance) (go_sql_in_use_connections{` + inst + `, db_name="orders"})`, "{{instance}} in use"},
			{`sum by (instance) (go_sql_open_connections{` + inst + `, db_name="orders"})`, "{{instance}} open"},
			{`sum by (instance) (go_sql_max_open_connections{` + inst + `, db_name="orders"})`, "{{instance}} max"},
		}, dashed(".* max"), minZero))
	b.add(8, 7, seriesPanel("Waiting for a connection", "Time per second spent waiting for a pooled connection.", "s",
		[]q{{`sum by (instance) (rate(go_sql_wait_duration_seconds_total{` + inst + `, db_name="orders"}` + ri + `))`, "{{instance}}"}}, minZero))
	b.add(8, 7, seriesPanel("Decision record errors", "Failures to record a batch's outcomes (its orders are redelivered), per second.", "ops",
		[]q{{`sum(rate(sluice_drain_record_errors_total{` + inst + `}` + ri + `))`, "record errors"}},
		colors(".*", "red"), minZero))
	b.add(8, 5, statPanel("Earlier orders in another backend", "Whether the running drain of the sale started into another backend than the one its earlier orders were drained into: those orders stay there (the drain's log says which, and what to do).", "none",
		[]q{{`max by (sale) (sluice_drain_backend_changed` + sel("") + `)`, "{{sale}}"}},
		mapped(valueText(0, "no", "green", 1, "yes", "orange"))))
	return b
}

func loadtest() *builder {
	gen := queryVar("instance", "Generator", "label_values(sluice_loadtest_running, instance)",
		"sluice loadtest processes started with --metrics-listen.")
	sale := queryVar("sale", "Sale", "label_values(sluice_sale_stock, sale)", "Sales known to the gates.")
	b := newDashboard("sluice-loadtest", "sluice — load generator",
		"What sluice loadtest offered and what came back, laid over the gates' admissions.", gen, sale)
	lt := `{` + inst + `}`
	b.add(4, 4, statPanel("Running", "Whether a run is going.", "none",
		[]q{{`max(sluice_loadtest_running` + lt + `)`, "running"}}, mapped(valueText(0, "idle", "text", 1, "running", "green"))))
	b.add(4, 4, statPanel("Offered", "Requests per second the schedule asks for now.", "reqps",
		[]q{{`sum(sluice_loadtest_offered_rate` + lt + `)`, "offered"}}))
	b.add(4, 4, statPanel("Achieved", "Answers per second received.", "reqps",
		[]q{{`sum(rate(sluice_loadtest_requests_total` + lt + ri + `))`, "achieved"}}))
	b.add(4, 4, statPanel("Late sends", "Requests sent later than allowed after their intended time, in the time range: the generator fell behind.", "short",
		[]q{{`sum(increase(sluice_loadtest_late_sends_total` + lt + `[$__range]))`, "late"}}, warnAbove(1, 100)))
	b.add(4, 4, statPanel("Dropped sends", "Scheduled requests never sent because the run ended first, in the time range.", "short",
		[]q{{`sum(increase(sluice_loadtest_dropped_sends_total` + lt + `[$__range]))`, "dropped"}}, warnAbove(1, 100)))
	b.add(4, 4, statPanel("Client p99", "99th percentile latency from intended send time, all outcomes.", "s",
		[]q{{`histogram_quantile(0.99, sum by (le) (rate(sluice_loadtest_latency_seconds_bucket` + lt + ri + `)))`, "p99"}}))
	b.add(24, 8, seriesPanel("Offered load vs the gates' admissions", "What the generator offered and got answered, against what the gates admitted and diverted.", "reqps",
		[]q{
			{`sum(sluice_loadtest_offered_rate` + lt + `)`, "offered (schedule)"},
			{`sum(rate(sluice_loadtest_requests_total` + lt + ri + `))`, "answered"},
			{`sum(rate(sluice_admission_requests_total{sale=~"$sale", outcome="admitted"}` + ri + `))`, "admitted at gates"},
			{`sum(rate(sluice_admission_requests_total{sale=~"$sale", outcome="diverted"}` + ri + `))`, "diverted at gates"},
		}, colors("offered.*", "blue", "answered", "text", "admitted.*", "green", "diverted.*", "orange"),
		dashed("offered.*"), minZero))
	b.add(12, 8, seriesPanel("Answers by outcome", "Answers per second as the generator saw them.", "reqps",
		[]q{{`sum by (outcome) (rate(sluice_loadtest_requests_total` + lt + ri + `))`, "{{outcome}}"}},
		stacked, outcomeColors, minZero))
	b.add(12, 8, seriesPanel("Late and dropped sends", "Sends per second the generator could not make on time, and scheduled sends it never made.", "ops",
		[]q{
			{`sum(rate(sluice_loadtest_late_sends_total` + lt + ri + `))`, "late"},
			{`sum(rate(sluice_loadtest_dropped_sends_total` + lt + ri + `))`, "dropped"},
		}, colors("late", "orange", "dropped", "red"), minZero))
	b.add(12, 9, seriesPanel("Client-side latency by outcome", "Latency from each request's intended send time (no coordinated omission).", "s",
		quantiles("sluice_loadtest_latency_seconds", "outcome", inst, "0.5", "0.99"), minZero))
	b.add(12, 9, heatmapPanel("Client-side latency heatmap", "Answers per second by latency from intended send time.", "s",
		`sum by (le) (rate(sluice_loadtest_latency_seconds_bucket`+lt+ri+`))`))
	return b
}
