package schema

import (
	"errors"
	"reflect"
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
