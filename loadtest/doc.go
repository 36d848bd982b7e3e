// Package loadtest rehearses a flash-sale drop against a gate over HTTP,
// measures it honestly and then checks that the sale ended correctly. It
// treats the gate as a black box: it speaks its public API and imports
// nothing of the gate's packages.
//
// The load is an open model: requests leave on a schedule (a Profile),
// not when earlier answers come back, and every latency is measured from
// the request's intended send time, so a stalled gate shows up in the
// percentiles of every request scheduled during the stall instead of
// quietly slowing the generator down (coordinated omission). When the
// generator cannot keep the schedule it says so: sends later than LateAfter
// are counted as late, and sends still pending when the run's time bound
// ends are counted as dropped. Every run is bounded in requests and time.
package loadtest
