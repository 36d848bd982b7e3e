package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// listFlag is a repeatable flag; from the environment or a file it takes a
// comma-separated list (or a YAML list).
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// layer fills every flag not given on the command line from the
// environment (SLUICE_<FLAG>) and then from the config file's top-level
// key of the same name (dashes or underscores). It returns the file's
// remaining structured keys; keys in ignored belong to another command
// sharing the file and are skipped.
func layer(fs *flag.FlagSet, configPath string, structured map[string]any, ignored map[string]bool) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var file map[string]any
	if configPath != "" {
		raw, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			return fmt.Errorf("config %s: %w", configPath, err)
		}
	}
	known := map[string]bool{}
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		known[key] = true
		if set[f.Name] {
			return
		}
		// An empty variable counts as unset, as in most tools: a
		// deployment that passes SLUICE_ADMIN_TOKEN from a secret that
		// is missing must not silently blank the file's token.
		if v := os.Getenv("SLUICE_" + strings.ToUpper(key)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("SLUICE_%s: %v", strings.ToUpper(key), err))
			}
			return
		}
		v, ok := file[key]
		if !ok {
			v, ok = file[f.Name]
		}
		if !ok {
			return
		}
		if err := fs.Set(f.Name, yamlScalar(v)); err != nil {
			errs = append(errs, fmt.Sprintf("config %s: %v", key, err))
		}
	})
	for k, v := range file {
		k = strings.ReplaceAll(k, "-", "_")
		if known[k] || ignored[k] {
			continue
		}
		if _, ok := structured[k]; !ok {
			errs = append(errs, fmt.Sprintf("config %s: unknown key %q", configPath, k))
			continue
		}
		structured[k] = v
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func yamlScalar(v any) string {
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, p := range list {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

// redecode turns a generic YAML value into a typed one.
func redecode(v any, into any) error {
	raw, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	return dec.Decode(into)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}
