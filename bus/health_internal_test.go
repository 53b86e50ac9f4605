package bus

import (
	"sync/atomic"
	"testing"
)

func TestReadStateEndsWhenTheLastWorkerReturnsWhileOpen(t *testing.T) {
	var closed atomic.Bool
	var r readState
	r.start(2)
	r.stop(&closed)
	if r.ended.Load() {
		t.Fatal("ended with a worker still reading")
	}
	r.stop(&closed)
	if !r.ended.Load() {
		t.Fatal("not ended after every worker returned on an open bus")
	}
	r.start(1)
	if r.ended.Load() {
		t.Fatal("a new start kept the old end")
	}
	closed.Store(true)
	r.stop(&closed)
	if r.ended.Load() {
		t.Fatal("workers returning on Close count as a subscription that ended")
	}
}
