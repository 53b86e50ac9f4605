package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestExample(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"check of inventory v2 (adds an optional field bin): no breaking change",
		"2 breaking change(s) -> exit 1",
		"field /quantity is required by the listener and missing",
		"field /warehouse changed type: the firer sends integer, the listener accepts string",
		"storefront handled the v1 event",
		"storefront dead-lettered the v3 event",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
