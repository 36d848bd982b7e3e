// Package overflow renders the answers a gate gives instead of admitting an
// order: sold out, busy, not started, closed, and bad input. Every answer
// is an RFC 9457 problem+json document with a stable machine-readable
// "reason" or, for browsers, a small HTML page; all carry
// Cache-Control: no-store.
//
// Answers are rendered once into bytes (an Answer) and written many times,
// so the diverted path costs about what a bare handler writing fixed bytes
// costs. The pages browsers get are html/template files: built in, or an
// operator's own (LoadPages, read from the fs.FS it is given). Beyond
// that the package does no I/O but writing the answer.
package overflow
