package loadtest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// BuyerRecords is what a shard's report carries of its buyers for the
// outcome check of the merged shards (MergeRoomReports): a fixed record
// of 40 bytes a buyer (its flags, outcome, ticket, positions, join and
// turn times from the start, proof CPU), the errors of the ETAs of those
// who got their turn, gzip'd in Data, and the order ids of the buyers
// served. A million buyers make some 45 MB of JSON: the ticket ids are
// random, and they are in it, so a shard's report is as secret as the
// rehearsal's tickets (its own, made up buyers').
type BuyerRecords struct {
	Version int `json:"version"`
	// Run tags the buyer ids; Buyers, Late and Sybil are the whole
	// rehearsal's counts (the shard's buyers are those g mod n = i).
	Run    string `json:"run"`
	Buyers int    `json:"buyers"`
	Late   int    `json:"late"`
	Sybil  int    `json:"sybil"`
	Count  int    `json:"count"` // records: this shard's buyers
	// Outcomes names the outcome codes of the records.
	Outcomes []string `json:"outcomes"`
	// Orders and OddTickets are by the buyer's index in the shard.
	Orders map[string]string `json:"orders"`
	// Variants are the variants of those orders, in a sale with variants.
	Variants   map[string]string `json:"variants,omitempty"`
	OddTickets map[string]string `json:"odd_tickets,omitempty"`
	// Latency: the join, poll and order latencies (µs), HdrHistogram's
	// compressed encoding.
	Latency []string `json:"latency"`
	Data    string   `json:"data"`
}

const (
	recordsVersion = 1
	recordSize     = 40
)

// recordsOf packs a shard's buyers.
func recordsOf(c *crowd, eta etaErrors, st *crowdStats) *BuyerRecords {
	br := &BuyerRecords{Version: recordsVersion, Run: c.run, Buyers: c.honest, Late: c.late, Sybil: c.sybil,
		Count: len(c.buyers), Orders: map[string]string{}}
	c.names.mu.Lock()
	br.Outcomes = append([]string(nil), c.names.list...)
	c.names.mu.Unlock()
	c.mu.Lock()
	for l, id := range c.orders {
		br.Orders[strconv.Itoa(int(l))] = id
	}
	if len(c.chose) > 0 {
		br.Variants = map[string]string{}
		for l, v := range c.chose {
			br.Variants[strconv.Itoa(int(l))] = v
		}
	}
	if len(c.odd) > 0 {
		br.OddTickets = map[string]string{}
		for l, id := range c.odd {
			br.OddTickets[strconv.Itoa(int(l))] = id
		}
	}
	c.mu.Unlock()
	st.mu.Lock()
	for _, h := range st.lat {
		enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			enc = nil
		}
		br.Latency = append(br.Latency, string(enc))
	}
	st.mu.Unlock()
	var raw bytes.Buffer
	zw := gzip.NewWriter(&raw)
	var rec [recordSize]byte
	for i := range c.buyers {
		b := &c.buyers[i]
		le := binary.LittleEndian
		le.PutUint16(rec[0:], uint16(b.flags))
		le.PutUint16(rec[2:], b.outcome)
		copy(rec[4:20], b.ticket[:])
		le.PutUint32(rec[20:], b.position)
		le.PutUint32(rec[24:], b.current)
		le.PutUint32(rec[28:], uint32(b.joinAt-c.startMs))
		turn := int32(noTime)
		if b.is(fTurn) {
			turn = b.turnAt - c.startMs
		}
		le.PutUint32(rec[32:], uint32(turn))
		le.PutUint32(rec[36:], b.proofUS)
		zw.Write(rec[:])
	}
	for _, xs := range [][]float32{eta.joinRel, eta.joinAbs, eta.pollRel, eta.pollAbs} {
		binary.Write(zw, binary.LittleEndian, uint32(len(xs)))
		binary.Write(zw, binary.LittleEndian, xs)
	}
	binary.Write(zw, binary.LittleEndian, uint32(max(1, eta.stride)))
	zw.Close()
	br.Data = base64.StdEncoding.EncodeToString(raw.Bytes())
	return br
}

// errRecords: a report's buyer records do not read as this version
// wrote them.
var errRecords = errors.New("the buyer records are damaged or of another version")

// maxEstimates bounds what a report may say it holds, before it is read.
const maxEstimates = 1 << 28

// unpack reads the shard's records into c (the merged crowd, on the
// scale of the sale's start), its shard being sh; it returns the ETA
// errors and the latencies.
func (br *BuyerRecords) unpack(c *crowd, sh Shard) (etaErrors, [latKinds]*hdrhistogram.Histogram, error) {
	var eta etaErrors
	var lat [latKinds]*hdrhistogram.Histogram
	if br.Version != recordsVersion || br.Count != sh.count(len(c.buyers)) {
		return eta, lat, fmt.Errorf("%w: version %d, %d records for %d buyers", errRecords, br.Version, br.Count, sh.count(len(c.buyers)))
	}
	raw, err := base64.StdEncoding.DecodeString(br.Data)
	if err != nil {
		return eta, lat, fmt.Errorf("%w: %v", errRecords, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return eta, lat, fmt.Errorf("%w: %v", errRecords, err)
	}
	codes := make([]uint16, len(br.Outcomes))
	for i, name := range br.Outcomes {
		codes[i] = c.names.code(name)
	}
	var rec [recordSize]byte
	le := binary.LittleEndian
	for l := range br.Count {
		if _, err := io.ReadFull(zr, rec[:]); err != nil {
			return eta, lat, fmt.Errorf("%w: record %d: %v", errRecords, l, err)
		}
		b := &c.buyers[sh.Index+l*sh.of()]
		b.flags = buyerFlags(le.Uint16(rec[0:]))
		if o := int(le.Uint16(rec[2:])); o < len(codes) {
			b.outcome = codes[o]
		} else {
			return eta, lat, fmt.Errorf("%w: record %d: outcome %d of %d", errRecords, l, o, len(codes))
		}
		copy(b.ticket[:], rec[4:20])
		b.position, b.current = le.Uint32(rec[20:]), le.Uint32(rec[24:])
		b.joinAt, b.turnAt = int32(le.Uint32(rec[28:])), int32(le.Uint32(rec[32:]))
		b.proofUS = le.Uint32(rec[36:])
		b.step = stepDone
	}
	for _, xs := range []*[]float32{&eta.joinRel, &eta.joinAbs, &eta.pollRel, &eta.pollAbs} {
		var n uint32
		if err := binary.Read(zr, le, &n); err != nil || n > maxEstimates {
			return eta, lat, fmt.Errorf("%w: the estimates: %v", errRecords, err)
		}
		*xs = make([]float32, n)
		if err := binary.Read(zr, le, *xs); err != nil {
			return eta, lat, fmt.Errorf("%w: the estimates: %v", errRecords, err)
		}
	}
	var stride uint32
	if err := binary.Read(zr, le, &stride); err != nil || stride > math.MaxInt32 {
		return eta, lat, fmt.Errorf("%w: the estimates' stride: %v", errRecords, err)
	}
	eta.stride = int(stride)
	if err := br.unpackMaps(c, sh); err != nil {
		return eta, lat, err
	}
	for k := range lat {
		lat[k] = newHist()
		if k < len(br.Latency) && br.Latency[k] != "" {
			h, err := hdrhistogram.Decode([]byte(br.Latency[k]))
			if err != nil {
				return eta, lat, fmt.Errorf("%w: latencies: %v", errRecords, err)
			}
			lat[k].Merge(h)
		}
	}
	return eta, lat, nil
}

// unpackMaps reads the order ids and the odd ticket ids.
func (br *BuyerRecords) unpackMaps(c *crowd, sh Shard) error {
	for _, m := range []struct {
		ids  map[string]string
		into map[uint32]string
	}{{br.Orders, c.orders}, {br.Variants, c.chose}, {br.OddTickets, c.odd}} {
		for k, id := range m.ids {
			l, err := strconv.Atoi(k)
			if err != nil || l < 0 || l >= br.Count {
				return fmt.Errorf("%w: buyer %q", errRecords, k)
			}
			m.into[uint32(sh.Index+l*sh.of())] = id
		}
	}
	return nil
}
