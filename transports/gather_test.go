package transports

import (
	"fmt"
	"slices"
	"testing"
)

// TestGather takes what waits, up to max, with or without yielding.
func TestGather(t *testing.T) {
	for _, yield := range []bool{false, true} {
		ch := make(chan int, 10)
		for i := range 5 {
			ch <- i
		}
		got := Gather(ch, []int{-1}, 4, yield)
		if !slices.Equal(got, []int{-1, 0, 1, 2}) {
			t.Fatalf("yield %v: %v", yield, got)
		}
		got = Gather(ch, got[:0], 4, yield)
		if !slices.Equal(got, []int{3, 4}) {
			t.Fatalf("yield %v: %v", yield, got)
		}
		if got = Gather(ch, got[:0], 4, yield); len(got) != 0 {
			t.Fatalf("yield %v: empty channel gave %v", yield, got)
		}
	}
}

// A sender goroutine takes the first request, then gathers what else waits
// and sends it all in one round trip.
func ExampleGather() {
	reqs := make(chan string, 8)
	for _, r := range []string{"a", "b", "c"} {
		reqs <- r
	}
	batch := []string{<-reqs}
	batch = Gather(reqs, batch, 256, true)
	fmt.Println(batch)
	// Output: [a b c]
}
