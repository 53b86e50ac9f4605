package redisstream

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// TestPublishKeepsCallOrder: the messages of one Publish call reach the
// stream in the order of the call, also with several pipes (which share
// the messages of different calls among connections), while other calls
// publish concurrently.
func TestPublishKeepsCallOrder(t *testing.T) {
	for _, pipes := range []int{1, 4} {
		t.Run("publish_pipes="+strconv.Itoa(pipes), func(t *testing.T) {
			tr := openTransport(t, testURL(t, "publish_pipes="+strconv.Itoa(pipes)+"&publish_batch=16"))
			const calls, perCall = 8, 100
			var wg sync.WaitGroup
			errs := make(chan error, calls)
			for c := range calls {
				wg.Go(func() {
					msgs := make([]*message.Message, perCall)
					for i := range msgs {
						msgs[i] = message.NewMessage(strconv.Itoa(c)+"-"+strconv.Itoa(i), []byte(strconv.Itoa(i)))
					}
					errs <- tr.Publish("orders.placed", msgs...)
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			entries, err := tr.Client().XRange(context.Background(), tr.StreamKey("orders.placed"), "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != calls*perCall {
				t.Fatalf("%d entries, want %d", len(entries), calls*perCall)
			}
			next := map[string]int{} // call -> the index its next entry must have
			for _, e := range entries {
				id, _ := e.Values[fieldUUID].(string)
				call, idx, _ := cut(id)
				if idx != next[call] {
					t.Fatalf("entry %s came where message %s-%d of its call was due", id, call, next[call])
				}
				next[call]++
			}
		})
	}
}

func cut(id string) (string, int, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '-' {
			n, err := strconv.Atoi(id[i+1:])
			return id[:i], n, err == nil
		}
	}
	return id, 0, false
}

// TestPublishStopsAtEndedContext: a message whose context has ended is not
// sent, nor those after it in the call; the ones before it are, and the
// call returns the context's error (with one pipe and with several).
func TestPublishStopsAtEndedContext(t *testing.T) {
	for _, pipes := range []int{1, 4} {
		t.Run("publish_pipes="+strconv.Itoa(pipes), func(t *testing.T) {
			tr := openTransport(t, testURL(t, "publish_pipes="+strconv.Itoa(pipes)))
			ended, cancel := context.WithCancel(context.Background())
			cancel()
			msgs := make([]*message.Message, 6)
			for i := range msgs {
				msgs[i] = message.NewMessage("m-"+strconv.Itoa(i), []byte("{}"))
			}
			msgs[3].SetContext(ended)
			if err := tr.Publish("orders.placed", msgs...); !errors.Is(err, context.Canceled) {
				t.Fatalf("Publish = %v, want context.Canceled", err)
			}
			entries, err := tr.Client().XRange(context.Background(), tr.StreamKey("orders.placed"), "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				id, _ := e.Values[fieldUUID].(string)
				got = append(got, id)
			}
			if !slices.Equal(got, []string{"m-0", "m-1", "m-2"}) {
				t.Fatalf("stream holds %v, want m-0 m-1 m-2", got)
			}
			// The transport still publishes (no request was left held).
			if err := tr.Publish("orders.placed", message.NewMessage("after", []byte("{}"))); err != nil {
				t.Fatal(err)
			}
		})
	}
}
