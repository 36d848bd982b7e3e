package loadtest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"time"
)

// pollConn is one worker's keep-alive connection for its polls: a
// minimal HTTP/1.1 client for GET /v1/tickets/{id} and nothing else. A
// poll is most of a rehearsal's requests, and a general client's cost per
// request (building the request, parsing every header, two deadlines)
// was a third of the generator's CPU: here the request is written from
// bytes made once with the ticket id patched in, and of the answer only
// the status, Content-Length, Retry-After and Connection are read.
// Answers must be framed by Content-Length (the gate's are). Not safe
// for concurrent use: one worker's.
type pollConn struct {
	addr    string
	tls     *tls.Config // nil: plain TCP
	timeout time.Duration
	conn    net.Conn
	reused  bool   // conn has answered a request before
	req     []byte // the request, the ticket id from req[idAt]
	idAt    int
	tail    []byte // the request after the id
	buf     []byte
	// The last answer: its status, Retry-After (seconds, 0 if none) and
	// body (in buf, until the next request).
	status     int
	retryAfter int
	body       []byte
}

// maxAnswer bounds an answer's size.
const maxAnswer = 1 << 20

// errAnswer: the answer was not HTTP/1.1 framed by Content-Length.
var errAnswer = errors.New("unreadable HTTP answer")

func newPollConn(host, path string, isTLS bool, timeout time.Duration) *pollConn {
	p := &pollConn{addr: host, timeout: timeout, buf: make([]byte, 0, 4<<10)}
	if h, _, err := net.SplitHostPort(host); err != nil || h == "" {
		port := "80"
		if isTLS {
			port = "443"
		}
		p.addr = net.JoinHostPort(host, port)
	}
	if isTLS {
		h, _, _ := net.SplitHostPort(p.addr)
		p.tls = &tls.Config{ServerName: h, MinVersion: tls.VersionTLS12}
	}
	p.req = append(p.req, "GET "+path...)
	p.idAt = len(p.req)
	p.tail = []byte(" HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: sluice-loadtest\r\nAccept: application/json\r\n\r\n")
	return p
}

// setID puts the ticket id (appended by appendID) in the request.
func (p *pollConn) setID(appendID func([]byte) []byte) {
	p.req = append(appendID(p.req[:p.idAt]), p.tail...)
}

// close drops the connection.
func (p *pollConn) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// get sends the request and reads its answer, by the deadline. A
// connection the gate closed while idle is redialled once, as a
// browser retries an idempotent request.
func (p *pollConn) get(deadline time.Time) error {
	for attempt := 0; ; attempt++ {
		retry, err := p.try(deadline)
		if err == nil || !retry || attempt > 0 {
			return err
		}
	}
}

// try is one attempt; retry says the request may be sent again on a
// new connection (it failed on a reused one before any answer came).
func (p *pollConn) try(deadline time.Time) (retry bool, err error) {
	if p.conn == nil {
		d := net.Dialer{Timeout: min(p.timeout, time.Until(deadline)), Deadline: deadline}
		c, err := d.Dial("tcp", p.addr)
		if err != nil {
			return false, err
		}
		if p.tls != nil {
			c = tls.Client(c, p.tls)
		}
		p.conn, p.reused = c, false
	}
	if err := p.conn.SetDeadline(deadline); err != nil {
		p.close()
		return false, err
	}
	reused := p.reused
	if _, err := p.conn.Write(p.req); err != nil {
		p.close()
		return reused && !isTimeout(err), err
	}
	n, err := p.read()
	if err != nil {
		p.close()
		return reused && n == 0 && !isTimeout(err), err
	}
	p.reused = true
	return false, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// read reads one answer: it returns how many bytes came.
func (p *pollConn) read() (int, error) {
	p.buf = p.buf[:0]
	p.status, p.retryAfter, p.body = 0, 0, nil
	headEnd, bodyLen := -1, -1
	closeAfter := false
	for {
		if headEnd >= 0 && len(p.buf) >= headEnd+bodyLen {
			break
		}
		if len(p.buf) == cap(p.buf) {
			if cap(p.buf) >= maxAnswer {
				return len(p.buf), errAnswer
			}
			p.buf = append(p.buf, make([]byte, cap(p.buf))...)[:len(p.buf)]
		}
		n, err := p.conn.Read(p.buf[len(p.buf):cap(p.buf)])
		p.buf = p.buf[:len(p.buf)+n]
		if err != nil {
			if err == io.EOF && len(p.buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return len(p.buf), err
		}
		if headEnd < 0 {
			if i := bytes.Index(p.buf, crlf2); i >= 0 {
				headEnd = i + len(crlf2)
				var ok bool
				if bodyLen, closeAfter, ok = p.parseHead(p.buf[:i]); !ok {
					return len(p.buf), errAnswer
				}
			}
		}
	}
	p.body = p.buf[headEnd : headEnd+bodyLen]
	if closeAfter || len(p.buf) != headEnd+bodyLen {
		p.close() // asked to, or it said more than it framed
	}
	return len(p.buf), nil
}

var (
	crlf2           = []byte("\r\n\r\n")
	crlf            = []byte("\r\n")
	hContentLength  = []byte("content-length")
	hRetryAfterName = []byte("retry-after")
	hConnection     = []byte("connection")
	hTransferEnc    = []byte("transfer-encoding")
)

// parseHead reads the status line and the headers it needs: the body's
// length and whether the gate closes the connection after it.
func (p *pollConn) parseHead(head []byte) (bodyLen int, closeAfter, ok bool) {
	line, rest, _ := bytes.Cut(head, crlf)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, false
	}
	status, err := strconv.Atoi(unsafeString(line[9:12]))
	if err != nil {
		return 0, false, false
	}
	p.status, bodyLen = status, -1
	closeAfter = line[7] == '0' // HTTP/1.0 closes unless told otherwise
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			return 0, false, false
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, hContentLength):
			if bodyLen, err = strconv.Atoi(unsafeString(value)); err != nil || bodyLen < 0 || bodyLen > maxAnswer {
				return 0, false, false
			}
		case bytes.EqualFold(name, hRetryAfterName):
			p.retryAfter, _ = strconv.Atoi(unsafeString(value))
		case bytes.EqualFold(name, hConnection):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, hTransferEnc):
			return 0, false, false // chunked: not the gate's
		}
	}
	if bodyLen < 0 {
		if status == 204 || status == 304 {
			return 0, closeAfter, true
		}
		return 0, false, false
	}
	return bodyLen, closeAfter, true
}
