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

// A cross-reference written in prose ("see the README's table", the
// README's "Rehearse a drop") is checked by nothing: TestLinks checks
// links only, and such references outlived the sections they named when
// those moved from the README to docs/. A reference to another page's
// section is a link; a quoted section name must be a heading there.
func TestNoProseCrossReferences(t *testing.T) {
	see := regexp.MustCompile(`(?i)\bsee (?:the )?(README|[a-z-]+\.md)'s\b`)
	quoted := regexp.MustCompile(`\b(README|[a-z-]+\.md)'s\s+"([^"]+)"`)
	files, _ := filepath.Glob("*.md")
	files = append(files, "../README.md")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ")
		for _, m := range see.FindAllString(text, -1) {
			t.Errorf("%s: %q: a reference in prose; make it a link to the section", f, m)
		}
		for _, m := range quoted.FindAllStringSubmatch(text, -1) {
			target := "../README.md"
			if m[1] != "README" {
				target = m[1]
			}
			anchor := strings.ReplaceAll(regexp.MustCompile("[^a-z0-9 _-]").ReplaceAllString(strings.ToLower(m[2]), ""), " ", "-")
			if !hasAnchor(t, target, anchor) {
				t.Errorf("%s: %q: %s has no such heading", f, m[0], m[1])
			}
		}
	}
}
