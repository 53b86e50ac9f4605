package schema

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

type signedUp struct {
	Email string    `json:"email" jsonschema:"format=email"`
	At    time.Time `json:"at"`
}

func TestValidateAssertsFormats(t *testing.T) {
	v, err := Compile(For(reflect.TypeFor[signedUp]()).JSON)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate([]byte(`{"email":"a@example.com","at":"2026-12-01T15:04:05.123456789+01:00"}`)); err != nil {
		t.Errorf("valid payload refused: %v", err)
	}
	err = v.Validate([]byte(`{"email":"not an address","at":"yesterday"}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("invalid formats accepted: %v", err)
	}
	var ptrs []string
	for _, p := range ve.Problems {
		ptrs = append(ptrs, p.Pointer)
	}
	if strings.Join(ptrs, " ") != "/at /email" {
		t.Errorf("mismatches at %v, want /at and /email: %v", ptrs, err)
	}
}

type shipment struct {
	To     *address          `json:"to"`
	Stock  map[int]string    `json:"stock"`
	Labels map[string]string `json:"labels"`
}

func TestValidateNullableNamesTheMismatchInsideTheValue(t *testing.T) {
	v, err := Compile(For(reflect.TypeFor[shipment]()).JSON)
	if err != nil {
		t.Fatal(err)
	}
	err = v.Validate([]byte(`{"to":{},"stock":{"north":"x"},"labels":{"a":1}}`))
	want := "payload does not match the event's schema: at /labels/a: got number, want string; " +
		"at /stock: additional properties 'north' not allowed; at /to: missing property 'city'"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant  %s", err, want)
	}
	err = v.Validate([]byte(`{"to":"x","stock":null,"labels":null}`))
	if err == nil || !strings.HasSuffix(err.Error(), "at /to: got string, want object or null") {
		t.Errorf("err = %v", err)
	}
}

type reading struct {
	Level  int8     `json:"level"`
	Count  uint     `json:"count"`
	Port   *uint16  `json:"port"`
	Codes  []uint32 `json:"codes"`
	Floor  int16    `json:"floor" jsonschema:"minimum=-3"`
	AsText uint8    `json:"as_text,string"`
}

func TestValidateIntegerRanges(t *testing.T) {
	v, err := Compile(For(reflect.TypeFor[reading]()).JSON)
	if err != nil {
		t.Fatal(err)
	}
	ok := `{"level":-128,"count":18446744073709551615,"port":65535,"codes":[4294967295],"floor":-3,"as_text":"7"}`
	if err := v.Validate([]byte(ok)); err != nil {
		t.Errorf("in range: %v", err)
	}
	err = v.Validate([]byte(`{"level":128,"count":-1,"port":70000,"codes":[-1],"floor":-4,"as_text":"7"}`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("out of range accepted: %v", err)
	}
	var ptrs []string
	for _, p := range ve.Problems {
		ptrs = append(ptrs, p.Pointer)
	}
	if got := strings.Join(ptrs, " "); got != "/codes/0 /count /floor /level /port" {
		t.Errorf("mismatches at %s: %v", got, err)
	}
}

// stamped has omitempty where encoding/json ignores it (a struct, an
// array with elements) and where it applies.
type stamped struct {
	At     time.Time `json:"at,omitempty"`
	Bill   address   `json:"bill,omitempty"`
	Pair   [2]int    `json:"pair,omitempty"`
	Note   string    `json:"note,omitempty"`
	Zeroed address   `json:"zeroed,omitzero"`
	Ship   *address  `json:"ship,omitempty"`
}

func TestOmitemptyOnAStructIsRequired(t *testing.T) {
	m := schemaOf[stamped](t)
	var req []string
	for _, r := range m["required"].([]any) {
		req = append(req, r.(string))
	}
	slices.Sort(req)
	if want := []string{"at", "bill", "pair"}; !slices.Equal(req, want) {
		t.Errorf("required %v, want %v (encoding/json always writes them)", req, want)
	}
}

// SelfEmbedded embeds itself: encoding/json handles it, the library would
// recurse until the stack overflows.
type SelfEmbedded struct {
	*SelfEmbedded
	X int `json:"x"`
}

type linked struct {
	Next *linked `json:"next,inline"`
}

type holdsSelfEmbedded struct {
	Items map[string][]SelfEmbedded `json:"items"`
}

func TestForStructThatEmbedsItself(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[SelfEmbedded](), reflect.TypeFor[linked](), reflect.TypeFor[holdsSelfEmbedded]()} {
		s := For(typ) // must return, not crash the process
		if string(s.JSON) != `{"$schema":"https://json-schema.org/draft/2020-12/schema"}` {
			t.Errorf("%s: %s, want the schema that accepts anything", typ, s.JSON)
		}
	}
	if embedsItself(reflect.TypeFor[propNode]()) || embedsItself(reflect.TypeFor[propEmbedded]()) {
		t.Error("a recursive field or an ordinary embedded struct is not embedding itself")
	}
}
