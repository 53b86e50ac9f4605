package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/transports/driver"
)

// recordingSub logs each Record call; the first one waits for release
// and succeeds, the later ones return err.
type recordingSub struct {
	driver.Subscription // only Record is called
	mu                  sync.Mutex
	calls               [][]driver.Attempt
	started, release    chan struct{}
	err                 error
}

func (r *recordingSub) Record(_ context.Context, as []driver.Attempt) error {
	r.mu.Lock()
	r.calls = append(r.calls, append([]driver.Attempt(nil), as...))
	first := len(r.calls) == 1
	r.mu.Unlock()
	if first {
		close(r.started)
		<-r.release
		return nil
	}
	return r.err
}

// Records made before hand-outs while a Record call is on its way go
// together in the next call (the slots re-reading a pending list at a
// restart), each caller gets that call's result, and a record made first
// drops the queued batched records of its entry that name fewer attempts.
func TestRecordNowSendsWaitingRecordsTogether(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			rec := &recordingSub{started: make(chan struct{}), release: make(chan struct{})}
			if fail {
				rec.err = errors.New("broker blip")
			}
			st := &settler{s: &subscription{d: rec, readCtx: context.Background()}}
			st.records = []driver.Attempt{{AckID: "e2", Attempts: 1}, {AckID: "e9", Attempts: 1}}
			const n = 8
			first := make(chan error, 1)
			go func() { first <- st.recordNow(driver.Attempt{AckID: "e1", Attempts: 2}) }()
			<-rec.started
			errs := make(chan error, n-1)
			var later []driver.Attempt
			for i := 2; i <= n; i++ {
				a := driver.Attempt{AckID: fmt.Sprintf("e%d", i), Attempts: 2}
				later = append(later, a)
				go func() { errs <- st.recordNow(a) }()
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				st.mu.Lock()
				waiting := len(st.now)
				st.mu.Unlock()
				if waiting == n-1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d records waiting, want %d", waiting, n-1)
				}
				time.Sleep(time.Millisecond)
			}
			close(rec.release)
			if err := <-first; err != nil {
				t.Errorf("the first recordNow: %v, want the first call's nil", err)
			}
			for range n - 1 {
				if err := <-errs; (err != nil) != fail {
					t.Errorf("a later recordNow: %v, want the second call's error (%v)", err, fail)
				}
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.calls) != 2 || len(rec.calls[0]) != 1 || rec.calls[0][0].AckID != "e1" {
				t.Fatalf("Record calls %v: want one of e1 alone, then one of e2..e%d", rec.calls, n)
			}
			slices.SortFunc(rec.calls[1], func(a, b driver.Attempt) int { return strings.Compare(a.AckID.(string), b.AckID.(string)) })
			if !slices.Equal(rec.calls[1], later) {
				t.Fatalf("second Record call %v, want %v", rec.calls[1], later)
			}
			if want := []driver.Attempt{{AckID: "e9", Attempts: 1}}; len(st.records) != 1 || st.records[0] != want[0] {
				t.Errorf("queued batched records %v, want %v (e2's attempt 1 dropped)", st.records, want)
			}
		})
	}
}
