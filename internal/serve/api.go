package serve

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"sluice/admission"
)

// The public listener's bounds. A request's headers must fit
// maxHeaderBytes (431 past it), nginx's default for one header line; its whole request must arrive within
// readTimeout of its first byte (408), which is what ends a slowloris
// client's hold on a connection; an idle keep-alive connection is closed
// after idleTimeout.
const (
	maxHeaderBytes = 8 << 10
	readTimeout    = 10 * time.Second
	writeTimeout   = 10 * time.Second
	idleTimeout    = 120 * time.Second
)

// newAPIServer is the public listener: fasthttp, whose per-request cost
// is about three quarters of net/http's. The ops listener stays on
// net/http, where promhttp and pprof live.
//
// A connection keeps its read and write buffers between requests unless
// cfg.ReduceMemory: releasing them halves an idle connection's memory but
// costs a one-byte read per request (fasthttp peeks the next request
// before taking a buffer again), about a tenth of the flood rate.
func newAPIServer(g *admission.Gate, cfg Config, log *slog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:      g.Handler(),
		ErrorHandler: g.ParseError,
		// The order body is bounded here: a larger Content-Length is
		// refused before its body is read.
		MaxRequestBodySize: int(g.MaxBodyBytes()),
		ReadBufferSize:     maxHeaderBytes,
		ReadTimeout:        readTimeout,
		WriteTimeout:       writeTimeout,
		IdleTimeout:        idleTimeout,
		Concurrency:        cfg.MaxConns,
		MaxConnsPerIP:      cfg.MaxConnsPerIP,
		ReduceMemoryUsage:  cfg.ReduceMemory,
		// The worker pool's cleaner wakes this often; after Shutdown it
		// exits at its next wake, so no goroutine outlives it by more.
		MaxIdleWorkerDuration:        time.Second,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		// Answers sent while shutting down say Connection: close, so
		// clients take their next request to another gate.
		CloseOnShutdown: true,
		Logger:          fasthttpLogger{log},
	}
}

// fasthttpLogger sends fasthttp's own messages (accept errors, mostly)
// to the gate's log at debug level, as net/http's ErrorLog was.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "server", "api")
}
