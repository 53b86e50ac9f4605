package schema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invopop/jsonschema"
)

type address struct {
	City string `json:"city"`
}

// Parcel is a payload with doc comments.
type Parcel struct {
	// City is where the parcel goes.
	City string `json:"city"`
	// Weight has a tag description, which wins.
	Weight float64 `json:"weight" jsonschema:"description=Kilograms"`
}

type embedded struct {
	Region string `json:"region"`
}

// priceChanged is the payload of a test event.
type priceChanged struct {
	embedded
	SKU      string            `json:"sku" jsonschema:"description=Stock keeping unit"`
	Price    float64           `json:"price"`
	Quantity int               `json:"quantity,omitempty"`
	Note     *string           `json:"note"`
	Forced   *string           `json:"forced" jsonschema:"required"`
	Tags     []string          `json:"tags"`
	Labels   map[string]string `json:"labels,omitempty"`
	Ship     *address          `json:"ship,omitempty"`
	Bill     address           `json:"bill"`
	At       time.Time         `json:"at"`
	Skipped  string            `json:"-"`
	hidden   string
	Raw      json.RawMessage `json:"raw,omitempty"`
}

func schemaOf[T any](t *testing.T) map[string]any {
	t.Helper()
	s := For(reflect.TypeFor[T]())
	var m map[string]any
	if err := json.Unmarshal(s.JSON, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestForRequiredAndNullable(t *testing.T) {
	m := schemaOf[priceChanged](t)
	req := []string{}
	for _, r := range m["required"].([]any) {
		req = append(req, r.(string))
	}
	slices.Sort(req)
	want := []string{"at", "bill", "forced", "price", "region", "sku", "tags"}
	if !slices.Equal(req, want) {
		t.Errorf("required = %v, want %v", req, want)
	}
	props := m["properties"].(map[string]any)
	for _, name := range []string{"-", "Skipped", "hidden"} {
		if _, ok := props[name]; ok {
			t.Errorf("property %q should not be in the schema", name)
		}
	}
	if d := props["sku"].(map[string]any)["description"]; d != "Stock keeping unit" {
		t.Errorf("sku description = %v", d)
	}
	v, err := Compile(For(reflect.TypeFor[priceChanged]()).JSON)
	if err != nil {
		t.Fatal(err)
	}
	// What encoding/json writes for a value with nil pointers, slices and maps validates.
	data, _ := json.Marshal(priceChanged{SKU: "a"})
	if err := v.Validate(data); err != nil {
		t.Errorf("the zero value's JSON does not validate: %v\n%s", err, data)
	}
	note := "n"
	data, _ = json.Marshal(priceChanged{SKU: "a", Note: &note, Tags: []string{"x"}, Labels: map[string]string{"a": "b"}, Ship: &address{City: "c"}})
	if err := v.Validate(data); err != nil {
		t.Errorf("a full value does not validate: %v\n%s", err, data)
	}
}

func TestValidateNamesThePointer(t *testing.T) {
	v, err := Compile(For(reflect.TypeFor[priceChanged]()).JSON)
	if err != nil {
		t.Fatal(err)
	}
	err = v.Validate([]byte(`{"sku":"a","price":"12","forced":null,"tags":null,"bill":{"city":1},"at":"2026-01-01T00:00:00Z","region":"eu"}`))
	var ve *ValidationError
	if !errorsAs(err, &ve) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	ptrs := map[string]bool{}
	for _, p := range ve.Problems {
		ptrs[p.Pointer] = true
	}
	if !ptrs["/price"] || !ptrs["/bill/city"] {
		t.Errorf("problems %+v should name /price and /bill/city", ve.Problems)
	}
	if !strings.Contains(err.Error(), "at /price: got string, want number") {
		t.Errorf("message %q should say what is wrong at /price", err)
	}
	err = v.Validate([]byte(`[1,2,3]`))
	if !errorsAs(err, &ve) || ve.Problems[0].Pointer != "" {
		t.Errorf("an array payload: %v", err)
	}
	if err := v.Validate([]byte(`{`)); err == nil {
		t.Error("not JSON validated")
	}
}

func TestHashIgnoresDescriptionsAndOrder(t *testing.T) {
	a := []byte(`{"type":"object","description":"x","properties":{"a":{"type":"string","description":"A"},"b":{"type":"integer"}},"required":["a","b"]}`)
	b := []byte(`{"required":["b","a"],"properties":{"b":{"type":"integer"},"a":{"type":"string"}},"type":"object"}`)
	c := []byte(`{"required":["b","a"],"properties":{"b":{"type":"integer"},"a":{"type":"number"}},"type":"object"}`)
	if Hash(a) != Hash(b) {
		t.Errorf("hashes differ for schemas that accept the same payloads:\n%s\n%s", Canonical(a), Canonical(b))
	}
	if Hash(a) == Hash(c) {
		t.Error("hashes equal for different types")
	}
	// A property called "description" is a name, not an annotation.
	d := []byte(`{"type":"object","properties":{"description":{"type":"string"}}}`)
	if !strings.Contains(string(Canonical(d)), `"description":{"type":"string"}`) {
		t.Errorf("canonical form lost the property named description: %s", Canonical(d))
	}
	if !strings.HasPrefix(Hash(a), "sha256:") || len(ShortHash(Hash(a))) != 12 {
		t.Errorf("hash %q", Hash(a))
	}
}

type node struct {
	Name     string  `json:"name"`
	Children []*node `json:"children"`
}

func TestForRecursiveAndOddTypes(t *testing.T) {
	s := For(reflect.TypeFor[node]())
	v, err := Compile(s.JSON)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.JSON)
	}
	if err := v.Validate([]byte(`{"name":"a","children":[{"name":"b","children":null}]}`)); err != nil {
		t.Error(err)
	}
	if err := v.Validate([]byte(`{"name":"a","children":[{"name":2,"children":null}]}`)); err == nil {
		t.Error("a wrong nested type validated")
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[json.RawMessage](), reflect.TypeFor[chan int](), reflect.TypeFor[any](), reflect.TypeFor[[]int](), reflect.TypeFor[*int]()} {
		s := For(typ)
		if _, err := Compile(s.JSON); err != nil {
			t.Errorf("%v: %v\n%s", typ, err, s.JSON)
		}
	}
}

func TestValidateNullableField(t *testing.T) {
	v, err := Compile(For(reflect.TypeFor[priceChanged]()).JSON)
	if err != nil {
		t.Fatal(err)
	}
	err = v.Validate([]byte(`{"sku":"a","price":1,"forced":null,"tags":null,"bill":{"city":"x"},"at":"2026-01-01T00:00:00Z","region":"eu","note":5}`))
	if err == nil || !strings.HasSuffix(err.Error(), "at /note: got number, want string or null") {
		t.Errorf("err = %v", err)
	}
}

func TestAddGoComments(t *testing.T) {
	before := For(reflect.TypeFor[Parcel]())
	if err := AddGoComments("github.com/busline/busline/schema", "."); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		comments.Lock()
		comments.m = nil
		comments.Unlock()
		reflected.Clear()
	})
	after := For(reflect.TypeFor[Parcel]())
	for _, want := range []string{`"description":"Parcel is a payload with doc comments."`, `"description":"City is where the parcel goes."`, `"description":"Kilograms"`} {
		if !strings.Contains(string(after.JSON), want) {
			t.Errorf("schema lacks %s:\n%s", want, after.JSON)
		}
	}
	if after.Hash != before.Hash {
		t.Error("descriptions changed the hash")
	}
	if err := AddGoComments("x", "does-not-exist"); err == nil {
		t.Error("a missing directory was accepted")
	}
}

type Box[T any] struct {
	V T `json:"v"`
}

type boxes struct {
	A Box[address] `json:"a"`
	B Box[int]     `json:"b"`
}

func TestForGenericTypes(t *testing.T) {
	s := For(reflect.TypeFor[boxes]())
	v, err := Compile(s.JSON)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.JSON)
	}
	if err := v.Validate([]byte(`{"a":{"v":{"city":"x"}},"b":{"v":1}}`)); err != nil {
		t.Error(err)
	}
	err = v.Validate([]byte(`{"a":{"v":{"city":"x"}},"b":{"v":"s"}}`))
	if err == nil || !strings.Contains(err.Error(), "at /b/v: got string, want integer") {
		t.Errorf("err = %v\n%s", err, s.JSON)
	}
	if !strings.Contains(string(s.JSON), `"Box_schema.address_"`) {
		t.Errorf("definition names: %s", s.JSON)
	}
}

// money writes itself as a string, whatever its fields.
type money struct{ cents int64 }

func (m money) MarshalJSON() ([]byte, error) {
	return json.Marshal(fmt.Sprintf("%d.%02d", m.cents/100, m.cents%100))
}

type level int

func (l level) MarshalText() ([]byte, error) { return []byte("high"), nil }

type custom struct{ X int }

func (custom) MarshalJSON() ([]byte, error) { return []byte(`"x"`), nil }
func (custom) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Enum: []any{"x"}}
}

type invoice struct {
	Total  money     `json:"total"`
	Level  level     `json:"level"`
	Custom custom    `json:"custom"`
	At     time.Time `json:"at"`
}

func TestForTypesThatMarshalThemselves(t *testing.T) {
	s := For(reflect.TypeFor[invoice]())
	v, err := Compile(s.JSON)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(invoice{Total: money{cents: 1234}, At: time.Now()})
	if err := v.Validate(data); err != nil {
		t.Errorf("%v\n%s\n%s", err, data, s.JSON)
	}
	if err := v.Validate([]byte(`{"total":1,"level":"high","custom":"y","at":"2026-01-01T00:00:00Z"}`)); err == nil || !strings.Contains(err.Error(), "/custom") {
		t.Errorf("a JSONSchema method was not used: %v\n%s", err, s.JSON)
	}
	if err := v.Validate([]byte(`{"total":1,"level":3,"custom":"x","at":"2026-01-01T00:00:00Z"}`)); err == nil || !strings.Contains(err.Error(), "/level") {
		t.Errorf("a TextMarshaler is not a string: %v", err)
	}
}
