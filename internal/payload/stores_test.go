package payload_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"sluice/internal/payload"
	"sluice/internal/testkit/pgtest"
)

// FuzzStoresAgree is the differential target between the gate's
// decision and the stores: a payload the gate takes must be taken by
// SQLite (modernc, as consumer/sqlite stores it: json_valid, then
// json_tree over every value and json_extract of every key) and by
// PostgreSQL (a jsonb cast, as consumer/postgres stores it), and read
// back by both as the values the gate checked. One PostgreSQL server and
// one connection serve the whole run; without PostgreSQL the target
// skips (fails under SLUICE_REQUIRE_POSTGRES=1, as in CI).
func FuzzStoresAgree(f *testing.F) {
	for _, s := range []string{
		`{"sku":"TEE-1","quantity":1}`, `{"e":"\ud83d\ude00","ls":"` + "\u2028" + `","h":"<&>","del":"\u007f","ctl":"\u001f\n","":"empty key"}`,
		`{"big":9007199254740993,"min":-9223372036854775808,"max":9223372036854775807,"over":9223372036854775808}`,
		`{"huge":1e21,"tiny":5e-324,"top":1.7976931348623157e308,"f":19.90,"z":-0,"third":0.30000000000000004}`,
		`{"a.b":{"c[0]":[1,{"$":null}]},"q\"uote":true,"back\\slash":false}`,
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	lite, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		f.Fatal(err)
	}
	lite.SetMaxOpenConns(1)
	f.Cleanup(func() { lite.Close() })
	pg, err := sql.Open("pgx", pgtest.Start(f).NewDatabase("fuzzstores"))
	if err != nil {
		f.Fatal(err)
	}
	pg.SetMaxOpenConns(1)
	f.Cleanup(func() { pg.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		tree, canonical, err := payload.Parse(data)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		doc := string(canonical)

		// SQLite.
		var valid int
		if err := lite.QueryRowContext(ctx, `SELECT json_valid(?)`, doc).Scan(&valid); err != nil || valid != 1 {
			t.Fatalf("SQLite: json_valid(%s) = %d, %v", doc, valid, err)
		}
		got, err := sqliteTree(ctx, lite, doc)
		if err != nil {
			t.Fatalf("SQLite: json_tree(%s): %v", doc, err)
		}
		if err := sameValue(tree, got, ""); err != nil {
			t.Fatalf("SQLite reads %s otherwise: %v", doc, err)
		}
		for key, want := range tree {
			if strings.ContainsAny(key, `"\`) {
				continue // a path spells these otherwise; json_tree read them above
			}
			var typ string
			var atom any
			if err := lite.QueryRowContext(ctx, `SELECT json_type(?, ?), json_extract(?, ?)`, doc, `$."`+key+`"`, doc, `$."`+key+`"`).Scan(&typ, &atom); err != nil {
				t.Fatalf("SQLite: json_extract(%s, %q): %v", doc, key, err)
			}
			if err := sameAtom(want, typ, atom); err != nil {
				t.Fatalf("SQLite: json_extract(%s, %q): %v", doc, key, err)
			}
		}

		// PostgreSQL.
		var text string
		if err := pg.QueryRowContext(ctx, `SELECT $1::jsonb::text`, doc).Scan(&text); err != nil {
			t.Fatalf("PostgreSQL refuses %s as jsonb: %v", doc, err)
		}
		back, _, err := payload.Parse([]byte(text))
		if err != nil {
			t.Fatalf("PostgreSQL gives back %s for %s, which the gate refuses: %v", text, doc, err)
		}
		if !reflect.DeepEqual(any(back), any(tree)) {
			t.Fatalf("PostgreSQL reads %s as %s", doc, text)
		}
	})
}

// node is a value as SQLite's json_tree gives it.
type node struct {
	typ      string
	atom     any
	children map[string]*node // by key, or index for an array
}

func sqliteTree(ctx context.Context, db *sql.DB, doc string) (*node, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, parent, key, type, atom FROM json_tree(?)`, doc)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byID := map[int64]*node{}
	var root *node
	type link struct {
		parent int64
		key    string
		n      *node
	}
	var links []link
	for rows.Next() {
		var id int64
		var parent sql.NullInt64
		var key, atom any
		var typ string
		if err := rows.Scan(&id, &parent, &key, &typ, &atom); err != nil {
			return nil, err
		}
		n := &node{typ: typ, atom: atom, children: map[string]*node{}}
		byID[id] = n
		if !parent.Valid {
			root = n
			continue
		}
		links = append(links, link{parent.Int64, fmt.Sprint(key), n})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, l := range links {
		p, ok := byID[l.parent]
		if !ok {
			return nil, fmt.Errorf("row of parent %d, which json_tree did not give", l.parent)
		}
		p.children[l.key] = l.n
	}
	if root == nil {
		return nil, fmt.Errorf("no root row")
	}
	return root, nil
}

// sameValue compares the gate's value with SQLite's reading of it.
func sameValue(want any, got *node, at string) error {
	switch w := want.(type) {
	case map[string]any:
		if got.typ != "object" || len(got.children) != len(w) {
			return fmt.Errorf("%s: %s of %d, want an object of %d", at, got.typ, len(got.children), len(w))
		}
		for k, v := range w {
			c, ok := got.children[k]
			if !ok {
				return fmt.Errorf("%s: no key %q", at, k)
			}
			if err := sameValue(v, c, at+"/"+k); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if got.typ != "array" || len(got.children) != len(w) {
			return fmt.Errorf("%s: %s of %d, want an array of %d", at, got.typ, len(got.children), len(w))
		}
		for i, v := range w {
			c, ok := got.children[strconv.Itoa(i)]
			if !ok {
				return fmt.Errorf("%s: no element %d", at, i)
			}
			if err := sameValue(v, c, at+"/"+strconv.Itoa(i)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := sameAtom(want, got.typ, got.atom); err != nil {
		return fmt.Errorf("%s: %w", at, err)
	}
	return nil
}

// sameAtom compares a scalar of the gate's with SQLite's type and value
// for it. An integer the gate keeps exact is SQLite's integer; any other
// number is the double the gate wrote shortest.
func sameAtom(want any, typ string, atom any) error {
	switch w := want.(type) {
	case string:
		if s, ok := atom.(string); typ != "text" || !ok || s != w {
			return fmt.Errorf("%s %#v, want the text %q", typ, atom, w)
		}
	case bool:
		if typ != strconv.FormatBool(w) {
			return fmt.Errorf("%s, want %v", typ, w)
		}
	case nil:
		if typ != "null" || atom != nil {
			return fmt.Errorf("%s %#v, want null", typ, atom)
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(w), 10, 64); err == nil {
			if n, ok := atom.(int64); typ != "integer" || !ok || n != i {
				return fmt.Errorf("%s %#v, want the integer %d", typ, atom, i)
			}
			return nil
		}
		x, err := strconv.ParseFloat(string(w), 64)
		if err != nil {
			return fmt.Errorf("the gate's number %s is no double: %v", w, err)
		}
		var got float64
		switch a := atom.(type) {
		case float64:
			got = a
		case int64:
			got = float64(a)
		default:
			return fmt.Errorf("%s %#v, want the number %s", typ, atom, w)
		}
		if got != x {
			return fmt.Errorf("%s %v, want the number %s", typ, got, w)
		}
	case map[string]any, []any: // json_extract gives a container as JSON text
		text, ok := atom.(string)
		if !ok || (typ != "object" && typ != "array") {
			return fmt.Errorf("%s %#v, want an object or array", typ, atom)
		}
		doc, err := payload.Decode([]byte(text), payload.MaxDepth)
		if err != nil {
			return fmt.Errorf("%s, which the gate refuses: %v", text, err)
		}
		if !reflect.DeepEqual(doc.Value, want) {
			return fmt.Errorf("%s, another value", text)
		}
	default:
		return fmt.Errorf("a %T in the gate's tree", want)
	}
	return nil
}
