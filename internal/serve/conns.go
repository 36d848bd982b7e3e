package serve

import (
	"net"
	"sync"
	"time"
)

// trackingListener remembers the public listener's open connections, so
// that a shutdown can end the ones waiting for a next request at once.
// fasthttp (keeping a connection's buffers between requests) waits for a
// keep-alive connection's next request as an active one, not an idle one,
// so its Shutdown would otherwise wait for that read to time out (10 s)
// for every client that keeps a connection open: a load balancer does.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func track(ln net.Listener) *trackingListener {
	return &trackingListener{Listener: ln, conns: make(map[*trackedConn]struct{})}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	t := &trackedConn{TCPConn: tc, l: l}
	l.mu.Lock()
	l.conns[t] = struct{}{}
	l.mu.Unlock()
	return t, nil
}

// expireReads makes every open connection's pending read return now. A
// connection whose request is being handled is not reading: its answer
// is written as usual, and fasthttp, shutting down, then closes it
// instead of reading again. Only a request still arriving is cut, and it
// was not admitted.
func (l *trackingListener) expireReads() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for c := range l.conns {
		_ = c.SetReadDeadline(now)
	}
}

type trackedConn struct {
	*net.TCPConn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.TCPConn.Close()
}
