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
	_, err := layerWith(fs, configPath, structured, ignored, layerOptions{})
	return err
}

// layerOptions adjust layer for one command.
type layerOptions struct {
	// keys renames a flag's key, in the environment (SLUICE_<KEY>) and
	// the file: the drain's --ops-listen is drain_ops_listen, so that an
	// environment or file shared with a gate does not give it the
	// gate's port.
	keys map[string]string
	// only are flags that only the command line sets (--check).
	only map[string]bool
}

// Where a setting's value came from, highest first.
const (
	fromFlag = iota + 1
	fromEnv
	fromFile
)

// origin is where a flag's value came from and how to name it there:
// "--buyer-header", "SLUICE_BUYER_HEADER" or "buyer_header in sluice.yaml".
type origin struct {
	layer int
	label string
}

// origins are the flags given, by name.
type origins map[string]origin

// label names a setting where it was given; "--NAME" when it was not.
func (o origins) label(name string) string {
	if g, ok := o[name]; ok {
		return g.label
	}
	return "--" + name
}

// layerWith is layer, returning where each flag given came from.
func layerWith(fs *flag.FlagSet, configPath string, structured map[string]any, ignored map[string]bool, opt layerOptions) (origins, error) {
	from := origins{}
	fs.Visit(func(f *flag.Flag) { from[f.Name] = origin{fromFlag, "--" + f.Name} })
	var file map[string]any
	if configPath != "" {
		raw, err := os.ReadFile(configPath)
		if err != nil {
			return from, fmt.Errorf("--config: %w", err)
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			return from, fmt.Errorf("--config %s: %w", configPath, err)
		}
	}
	known := map[string]bool{}
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		key := strings.ReplaceAll(f.Name, "-", "_")
		if k, ok := opt.keys[f.Name]; ok {
			key = k
		}
		known[key] = true
		if _, set := from[f.Name]; set || opt.only[f.Name] {
			return
		}
		// An empty variable counts as unset, as in most tools: a
		// deployment that passes SLUICE_ADMIN_TOKEN from a secret that
		// is missing must not silently blank the file's token.
		env := "SLUICE_" + strings.ToUpper(key)
		if v := os.Getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", env, err))
			}
			from[f.Name] = origin{fromEnv, env}
			return
		}
		v, ok := file[key]
		if !ok {
			v, ok = file[strings.ReplaceAll(key, "_", "-")]
		}
		if !ok {
			return
		}
		if err := fs.Set(f.Name, yamlScalar(v)); err != nil {
			errs = append(errs, fmt.Sprintf("%s in %s: %v", key, configPath, err))
		}
		from[f.Name] = origin{fromFile, key + " in " + configPath}
	})
	for k, v := range file {
		k = strings.ReplaceAll(k, "-", "_")
		if known[k] || ignored[k] {
			continue
		}
		if _, ok := structured[k]; !ok {
			errs = append(errs, fmt.Sprintf("%s: unknown key %q", configPath, k))
			continue
		}
		structured[k] = v
	}
	if len(errs) > 0 {
		return from, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return from, nil
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
