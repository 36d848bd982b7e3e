package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The shipped JSON files are this program's output: an edit to one
// without the other fails here.
func TestFilesAreGenerated(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "dashboards")
	want := map[string]bool{}
	for _, d := range dashboards() {
		b, err := render(d)
		if err != nil {
			t.Fatal(err)
		}
		name := fileName(d)
		want[name] = true
		have, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("dashboards/%s: %v (run go generate ./dashboards)", name, err)
			continue
		}
		if !bytes.Equal(have, b) {
			t.Errorf("dashboards/%s is not what gendashboards writes; run go generate ./dashboards", name)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("dashboards/%s is not generated; add it to gendashboards or remove it", filepath.Base(f))
		}
	}
}
