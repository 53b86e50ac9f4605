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
