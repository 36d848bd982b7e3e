// Command idleconns opens many keep-alive connections to a gate, makes
// one request on each and holds them idle, so that the gate's memory and
// goroutines per idle connection can be read (see bench/idle.sh).
//
//	idleconns -target 127.0.0.1:18080 -path /v1/sales/s1 -n 50000 -hold 20s
//
// Connections come from 127.0.0.1, 127.0.0.2, … (-sources of them), since
// one source address reaches one port with at most ~28,000 ephemeral
// ports. Only loopback targets are accepted.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("target", "127.0.0.1:18080", "gate address (loopback only)")
	path := flag.String("path", "/v1/sales/s1", "path of the one GET made on each connection")
	n := flag.Int("n", 50000, "connections")
	sources := flag.Int("sources", 4, "source addresses 127.0.0.1…127.0.0.N")
	parallel := flag.Int("parallel", 256, "connections opened at once")
	hold := flag.Duration("hold", 20*time.Second, "how long to hold the connections idle before closing them")
	ready := flag.String("ready-file", "", "file written once every connection is open and idle")
	flag.Parse()
	host, _, err := net.SplitHostPort(*target)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("target %q: loopback addresses only", *target)
	}
	req := "GET " + *path + " HTTP/1.1\r\nHost: " + *target + "\r\n\r\n"
	var (
		mu     sync.Mutex
		conns  = make([]net.Conn, 0, *n)
		failed atomic.Int64
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range *parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(*n) {
					return
				}
				src := net.IPv4(127, 0, 0, byte(1+i%int64(*sources)))
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
				c, err := d.Dial("tcp", *target)
				if err != nil {
					if failed.Add(1) <= 3 {
						log.Printf("dial: %v", err)
					}
					continue
				}
				if err := exchange(c, req); err != nil {
					if failed.Add(1) <= 3 {
						log.Printf("request: %v", err)
					}
					c.Close()
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("%d connections open and idle after one request each (%d failed) in %v\n", len(conns), failed.Load(), time.Since(start).Round(time.Millisecond))
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(fmt.Sprintln(len(conns))), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	time.Sleep(*hold)
	for _, c := range conns {
		c.Close()
	}
}

// exchange makes one keep-alive request on c and reads its whole answer.
func exchange(c net.Conn, req string) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		return fmt.Errorf("the server closed the connection")
	}
	return err
}
