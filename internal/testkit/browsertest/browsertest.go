// Package browsertest drives headless Chromium for the tests of sluice's
// pages (the ops console, the load report): it finds the browser (or
// skips, see testenv), starts it with the network limited to what the page
// asks for, collects what the page writes to its console, and answers
// confirm() dialogs as the test says.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"sluice/internal/testkit/testenv"
)

// Path is the Chromium binary, or "" when the machine has none.
func Path() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Require returns the Chromium binary, or ends the test as testenv says.
func Require(t testing.TB) string {
	t.Helper()
	bin := Path()
	if bin == "" {
		testenv.Missing(t, "Chromium is not installed (apt-get install chromium)", "SLUICE_REQUIRE_CHROMIUM")
	}
	return bin
}

// Browser is one headless Chromium tab.
type Browser struct {
	Ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	dialogs []string
	accept  atomic.Bool
}

// New starts Chromium with one tab, 1280×900, and stops it when the test
// ends. Dialogs are accepted until Dismiss is called.
func New(t testing.TB) *Browser {
	t.Helper()
	bin := Require(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, tcancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { tcancel(); cancel(); acancel() })
	b := &Browser{Ctx: ctx}
	b.accept.Store(true)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		// On a machine busy with other test binaries Chromium has been
		// seen to exit at once; one more try before giving up.
		t.Logf("chromium did not start (%v): trying again", err)
		tcancel()
		cancel()
		acancel()
		time.Sleep(time.Second)
		opts = append(opts, chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")))
		actx, acancel = chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel = chromedp.NewContext(actx)
		ctx, tcancel = context.WithTimeout(ctx, 2*time.Minute)
		t.Cleanup(func() { tcancel(); cancel(); acancel() })
		b.Ctx = ctx
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("chromium: %v", err)
		}
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: b.accept.Load()})
		}
	}()
	return b
}

// Accept makes the next dialogs answer OK (true) or Cancel (false).
func (b *Browser) Accept(ok bool) { b.accept.Store(ok) }

// Dialogs are the messages of the dialogs the page opened so far.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Errors are the errors and uncaught exceptions the page logged so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.console {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m.String())
		}
	}
	return out
}

// Do runs actions in the tab and fails the test on an error.
func (b *Browser) Do(t testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Eval evaluates a JavaScript expression in the page.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// WaitFor waits until a JavaScript expression is truthy in the page.
func (b *Browser) WaitFor(t testing.TB, what, expr string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(b.Ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// Screenshot writes the whole page as a PNG to path.
func (b *Browser) Screenshot(t testing.TB, path string) {
	t.Helper()
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
