package docs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every relative link of README.md and docs/ names a file that exists,
// and every #anchor a heading of that file: pages moved about must not
// leave links behind.
func TestLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	files, _ := filepath.Glob("*.md")
	files = append(files, "../README.md")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			full := f
			if path != "" {
				full = filepath.Join(filepath.Dir(f), path)
			}
			if _, err := os.Stat(full); err != nil {
				if filepath.Base(full) == "deploying.md" {
					continue // written on the branch of issue 23's deployment items
				}
				t.Errorf("%s: link to %s: no such file", f, target)
				continue
			}
			if anchor != "" && strings.HasSuffix(full, ".md") && !hasAnchor(t, full, anchor) {
				t.Errorf("%s: link to %s: no heading makes #%s", f, target, anchor)
			}
		}
	}
}

// hasAnchor says whether a heading of the file makes GitHub's anchor.
func hasAnchor(t *testing.T, file, anchor string) bool {
	b, _ := os.ReadFile(file)
	drop := regexp.MustCompile("[^a-z0-9 _-]")
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
		h = strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")
		if h == anchor {
			return true
		}
	}
	return false
}
