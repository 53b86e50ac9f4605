package bustest

import (
	"runtime"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// runtime.Goexit in a handler (t.FailNow) is not recorded as a panic and
// goes on unwinding: the goroutine ends and nothing is recorded.
func TestRecordLeavesGoexitAlone(t *testing.T) {
	b := &Bus{}
	h := b.record(func(*message.Message) ([]*message.Message, error) {
		runtime.Goexit()
		return nil, nil
	})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = h(message.NewMessage("e-1", nil))
		t.Error("the handler's Goexit was stopped")
	})
	wg.Wait() // after every deferred call of the goroutine, record's included
	if len(b.handled) != 0 {
		t.Fatalf("handled = %+v, want nothing for a Goexit", b.handled)
	}
}
