package docs_test

import "testing"

// The comparison must refuse output that differs from what a document
// shows, or TestDocs checks nothing.
func TestCheckRefusesWhatDiffers(t *testing.T) {
	for _, c := range []struct {
		name, shown, printed string
		ok                   bool
	}{
		{"status", "HTTP/1.1 202 Accepted", "HTTP/1.1 202 Accepted\r\nX: y\n", true},
		{"another status", "HTTP/1.1 202 Accepted", "HTTP/1.1 415 Unsupported Media Type\n", false},
		{"header", "Location: /v1/orders/x", "HTTP/1.1 202 Accepted\nLocation: /v1/orders/y\n", true},
		{"no header", "Preference-Applied: wait=5", "HTTP/1.1 202 Accepted\n", false},
		{"json", `{"status":"queued","sale":"demo","order_id":"demo-1-abc"}`, `{"order_id":"demo-7-zzz","sale":"demo","status":"queued"}`, true},
		{"json value differs", `{"status":"confirmed",...}`, `{"status":"queued"}`, false},
		{"json key missing", `{"reason":"sold_out","sale":"s1"}`, `{"reason":"sold_out"}`, false},
		{"json null", `{"seed":null,"sealed":false}`, `{"seed":null,"sealed":true}`, false},
		{"line", "bob 202", "bob 202\ncarol 202\n", true},
		{"line differs", "dave 410", "dave 202\n", false},
		{"spaces and wildcards", "demo  open   1000   ...", "demo open 1000 999 1\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := check(c.shown, c.printed)
			if c.ok && msg != "" {
				t.Errorf("refused: %s", msg)
			}
			if !c.ok && msg == "" {
				t.Errorf("allowed %q for %q", c.printed, c.shown)
			}
		})
	}
}

func TestParseSplitsCommandsAndOutput(t *testing.T) {
	steps, blocks := parse(t, "testdata/sample.md")
	if blocks != 1 || len(steps) != 3 {
		t.Fatalf("%d blocks, %d steps: %+v", blocks, len(steps), steps)
	}
	if steps[0].cmd != "curl -s a \\\n  -d b" || len(steps[0].expect) != 1 || steps[0].expect[0] != "{\"a\":1}" {
		t.Errorf("step 1: %+v", steps[0])
	}
	if steps[1].cmd != "for b in x y; do\n  echo $b\ndone" || len(steps[1].expect) != 2 {
		t.Errorf("step 2: %+v", steps[1])
	}
	if len(steps[2].expect) != 0 {
		t.Errorf("a description after a blank line was taken for output: %+v", steps[2])
	}
}
