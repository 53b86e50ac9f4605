package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/busline/busline/transports/driver"
)

// recordingSub logs each Record call; the first one waits for release.
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
			st := &settler{s: &subscription{d: rec}}
			st.records = []driver.Attempt{{AckID: "e2", Attempts: 1}, {AckID: "e9", Attempts: 1}}
			ctx := context.Background()
			const n = 8
			errs := make(chan error, n)
			go func() { errs <- st.recordNow(ctx, driver.Attempt{AckID: "e1", Attempts: 2}) }()
			<-rec.started
			for i := 2; i <= n; i++ {
				go func() { errs <- st.recordNow(ctx, driver.Attempt{AckID: fmt.Sprintf("e%d", i), Attempts: 2}) }()
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
			for range n {
				if err := <-errs; (err != nil) != fail {
					t.Errorf("recordNow: %v, want error %v", err, fail)
				}
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.calls) != 2 || len(rec.calls[0]) != 1 || len(rec.calls[1]) != n-1 {
				t.Fatalf("Record calls %v: want one of 1 record, then one of %d", rec.calls, n-1)
			}
			if want := []driver.Attempt{{AckID: "e9", Attempts: 1}}; len(st.records) != 1 || st.records[0] != want[0] {
				t.Errorf("queued batched records %v, want %v (e2's attempt 1 dropped)", st.records, want)
			}
		})
	}
}
