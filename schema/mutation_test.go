package schema

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestValidPayloadsDecode is the other half of the contract: a payload
// the schema accepts decodes into the Go type (no false acceptance). It
// takes what encoding/json writes for random values and changes one
// value in it at random; when the schema still accepts the result,
// encoding/json must decode it.
func TestValidPayloadsDecode(t *testing.T) {
	types := []reflect.Type{
		reflect.TypeFor[propNested](),
		reflect.TypeFor[propEmbedded](),
		reflect.TypeFor[propBox[propItem]](),
		reflect.TypeFor[propTags](),
		reflect.TypeFor[propNode](),
		reflect.TypeFor[propShadow](),
		reflect.TypeFor[propNumbers](),
		reflect.TypeFor[[]propItem](),
		reflect.TypeFor[map[int64]propItem](),
		reflect.TypeFor[reading](),
	}
	for _, typ := range types {
		t.Run(typ.String(), func(t *testing.T) {
			v, err := Compile(For(typ).JSON)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(2, uint64(len(typ.String()))))
			for i := range 400 {
				data, err := json.Marshal(randomValue(rng, typ, 0).Interface())
				if err != nil {
					t.Fatal(err)
				}
				var doc any
				dec := json.NewDecoder(bytes.NewReader(data))
				dec.UseNumber()
				if err := dec.Decode(&doc); err != nil {
					t.Fatal(err)
				}
				doc = mutate(rng, doc)
				mutated, _ := json.Marshal(doc)
				if v.Validate(mutated) != nil {
					continue
				}
				if err := json.Unmarshal(mutated, reflect.New(typ).Interface()); err != nil {
					t.Fatalf("value %d accepted by the schema, not decodable into %s:\n%s\n%v\nschema: %s", i, typ, mutated, err, For(typ).JSON)
				}
			}
		})
	}
}

// mutate replaces one value of a decoded JSON document, chosen at random,
// with a random JSON value. Integers beyond 64 bits and integers written
// as 1.0 or 1e2 are left out: the schemas accept them (docs/schemas.md,
// Limits).
func mutate(rng *rand.Rand, doc any) any {
	var paths [][]any
	var walk func(v any, path []any)
	walk = func(v any, path []any) {
		paths = append(paths, path)
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(e, append(append([]any(nil), path...), k))
			}
		case []any:
			for i, e := range x {
				walk(e, append(append([]any(nil), path...), i))
			}
		}
	}
	walk(doc, nil)
	path := paths[rng.IntN(len(paths))]
	replacements := []any{
		nil, true, "x", "", "12", "-7", "1.5", "true", "2026-13-01T00:00:00Z", "2026-12-01T10:00:00Z", "AQID", "!!",
		json.Number("-1"), json.Number("1.5"), json.Number("300"), json.Number("70000"), json.Number("4294967296"), json.Number("0"),
		map[string]any{}, map[string]any{"-5": json.Number("1")}, map[string]any{"x": "y"}, []any{}, []any{json.Number("1")},
	}
	r := replacements[rng.IntN(len(replacements))]
	if len(path) == 0 {
		return r
	}
	cur := doc
	for _, p := range path[:len(path)-1] {
		switch k := p.(type) {
		case string:
			cur = cur.(map[string]any)[k]
		case int:
			cur = cur.([]any)[k]
		}
	}
	switch k := path[len(path)-1].(type) {
	case string:
		cur.(map[string]any)[k] = r
	case int:
		cur.([]any)[k] = r
	}
	return doc
}
