package pgident

import (
	"errors"
	"testing"
)

func TestQuoteTable(t *testing.T) {
	for in, want := range map[string][2]string{
		"busline_outbox":   {`"busline_outbox"`, "busline_outbox"},
		"app.Outbox_2":     {`"app"."Outbox_2"`, "Outbox_2"},
		"_x":               {`"_x"`, "_x"},
		"bad-name":         {},
		"a.b.c":            {},
		"1abc":             {},
		`x"; DROP TABLE y`: {},
		"":                 {},
	} {
		q, bare, err := QuoteTable(in)
		if want[0] == "" {
			if !errors.Is(err, ErrBadTable) {
				t.Errorf("QuoteTable(%q) = %q, %v; want ErrBadTable", in, q, err)
			}
			continue
		}
		if err != nil || q != want[0] || bare != want[1] {
			t.Errorf("QuoteTable(%q) = %q, %q, %v; want %q, %q", in, q, bare, err, want[0], want[1])
		}
	}
}

func TestLockID(t *testing.T) {
	if LockID("a", "b") != LockID("a", "b") {
		t.Fatal("LockID is not deterministic")
	}
	if LockID("a", "bc") == LockID("ab", "c") {
		t.Fatal("LockID does not separate scope from key")
	}
}
