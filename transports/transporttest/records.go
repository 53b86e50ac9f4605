package transporttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/transports"
)

// RunRecordStore checks a transports.RecordStore: put and replace, claim
// if absent (one winner among racing claims, across two stores opened on
// the same broker), listing by kind, delete, and the shared validation of
// kinds and keys. open returns a new store on one broker each time it is
// called within one test; a driver's test calls it once per transport it
// opens. Kinds are made unique per run, so a shared broker stays usable;
// the test deletes what it wrote.
func RunRecordStore(t *testing.T, open func(t *testing.T) transports.RecordStore) {
	t.Helper()
	kind := func() string { return "t" + strings.ToLower(rand.Text()[:12]) }
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return c
	}

	t.Run("PutReplaceListDelete", func(t *testing.T) {
		s, k, c := open(t), kind(), ctx(t)
		if err := s.PutRecord(c, k, "a", []byte("1")); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
		if err := s.PutRecord(c, k, "b/x:y", []byte("2")); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
		if err := s.PutRecord(c, k, "a", []byte("3")); err != nil {
			t.Fatalf("PutRecord (replace): %v", err)
		}
		got, err := s.Records(c, k)
		if err != nil {
			t.Fatalf("Records: %v", err)
		}
		if len(got) != 2 || string(got["a"]) != "3" || string(got["b/x:y"]) != "2" {
			t.Fatalf("Records = %q, want a=3 b/x:y=2", got)
		}
		if err := s.DeleteRecord(c, k, "a"); err != nil {
			t.Fatalf("DeleteRecord: %v", err)
		}
		if err := s.DeleteRecord(c, k, "never-there"); err != nil {
			t.Fatalf("DeleteRecord of a missing record: %v", err)
		}
		got, err = s.Records(c, k)
		if err != nil {
			t.Fatalf("Records: %v", err)
		}
		if len(got) != 1 || string(got["b/x:y"]) != "2" {
			t.Fatalf("after delete Records = %q, want only b/x:y=2", got)
		}
		if err := s.DeleteRecord(c, k, "b/x:y"); err != nil {
			t.Fatalf("DeleteRecord: %v", err)
		}
		other, err := s.Records(c, kind())
		if err != nil || len(other) != 0 {
			t.Fatalf("Records of an unused kind = %q, %v; want empty, nil", other, err)
		}
	})

	t.Run("ClaimIfAbsent", func(t *testing.T) {
		s, k, c := open(t), kind(), ctx(t)
		t.Cleanup(func() { _ = s.DeleteRecord(context.Background(), k, "g") })
		got, err := s.ClaimRecord(c, k, "g", []byte("first"))
		if err != nil || string(got) != "first" {
			t.Fatalf("first ClaimRecord = %q, %v; want first", got, err)
		}
		got, err = s.ClaimRecord(c, k, "g", []byte("second"))
		if err != nil || string(got) != "first" {
			t.Fatalf("second ClaimRecord = %q, %v; want the earlier value first", got, err)
		}
		if err := s.DeleteRecord(c, k, "g"); err != nil {
			t.Fatalf("DeleteRecord: %v", err)
		}
		got, err = s.ClaimRecord(c, k, "g", []byte("third"))
		if err != nil || string(got) != "third" {
			t.Fatalf("ClaimRecord after delete = %q, %v; want third", got, err)
		}
	})

	t.Run("ClaimRace", func(t *testing.T) {
		stores := []transports.RecordStore{open(t), open(t)}
		k, c := kind(), ctx(t)
		t.Cleanup(func() { _ = stores[0].DeleteRecord(context.Background(), k, "g") })
		const n = 8
		results := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = stores[i%2].ClaimRecord(c, k, "g", fmt.Appendf(nil, "claimant-%d", i))
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("claim %d: %v", i, errs[i])
			}
			if !bytes.Equal(results[i], results[0]) {
				t.Fatalf("claims disagree on the winner: %q and %q", results[0], results[i])
			}
		}
		stored, err := stores[1].Records(c, k)
		if err != nil || !bytes.Equal(stored["g"], results[0]) {
			t.Fatalf("stored record = %q, %v; want the winner %q", stored["g"], err, results[0])
		}
	})

	t.Run("Validation", func(t *testing.T) {
		s, c := open(t), ctx(t)
		for _, bad := range [][2]string{{"", "k"}, {"Kind", "k"}, {"k-ind", "k"}, {"kind", ""}, {"kind", "a b"}, {"kind", "a\nb"}, {"kind", strings.Repeat("k", 513)}} {
			if err := s.PutRecord(c, bad[0], bad[1], nil); !errors.Is(err, transports.ErrInvalidRecord) {
				t.Errorf("PutRecord(%q, %q) = %v; want ErrInvalidRecord", bad[0], bad[1], err)
			}
			if _, err := s.ClaimRecord(c, bad[0], bad[1], nil); !errors.Is(err, transports.ErrInvalidRecord) {
				t.Errorf("ClaimRecord(%q, %q) = %v; want ErrInvalidRecord", bad[0], bad[1], err)
			}
		}
	})
}
