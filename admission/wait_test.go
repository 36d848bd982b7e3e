package admission

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestPreferWait(t *testing.T) {
	for _, c := range []struct {
		headers []string
		want    time.Duration
	}{
		{nil, 0},
		{[]string{"wait=5"}, 5 * time.Second},
		{[]string{"Wait = 7"}, 7 * time.Second},
		{[]string{`wait="4"`}, 4 * time.Second},
		{[]string{"wait=100"}, MaxPreferWait},
		{[]string{"wait=0"}, 0},
		{[]string{"wait=-1"}, 0},
		{[]string{"wait=abc"}, 0},
		{[]string{"wait=99999999999999999999"}, 0},
		{[]string{"handling=lenient, wait=3"}, 3 * time.Second},
		{[]string{"wait=3;foo=bar"}, 3 * time.Second},
		{[]string{"wait=2, wait=9"}, 2 * time.Second},
		{[]string{"return=minimal", "wait=6"}, 6 * time.Second},
		{[]string{"respond-async, wait=5"}, 0},
		{[]string{"wait=5", "respond-async"}, 0},
		{[]string{"waiting=5"}, 0},
	} {
		var h fasthttp.RequestHeader
		for _, v := range c.headers {
			h.Add("Prefer", v)
		}
		if got := preferWait(&h); got != c.want {
			t.Errorf("Prefer %q: wait %v, want %v", c.headers, got, c.want)
		}
	}
}
