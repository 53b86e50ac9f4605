package transports_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/busline/busline/transports"
)

// A group's JSON document: what the broker does not report is null, and
// the stale fields appear only when the viewer judges staleness (the
// dashboard does, `busline inspect --json` does not). A live consumer
// that has never read (Idle Unknown) or has read nothing for long is
// not stale.
func ExampleNewGroupDoc() {
	g := transports.GroupInfo{
		Group: "shop-email", Event: "orders.placed", Consumers: 4,
		Pending: 1, Lag: transports.Unknown, OldestPending: 1500 * time.Millisecond,
		Members: []transports.ConsumerInfo{{Name: "web-1", Pending: 1, Idle: time.Hour}, {Name: "web-2", Idle: time.Second},
			{Name: "web-3", Idle: transports.Unknown, Live: true}, {Name: "web-4", Idle: time.Hour, Live: true}},
	}
	for _, staleAfter := range []time.Duration{0, 5 * time.Minute} {
		b, err := json.Marshal(transports.NewGroupDoc(g, staleAfter))
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(string(b))
	}
	// Output:
	// {"group":"shop-email","event":"orders.placed","consumers":4,"pending":1,"lag":null,"oldest_pending_ms":1500,"dead_letters":0,"members":[{"name":"web-1","pending":1,"idle_ms":3600000,"live":false},{"name":"web-2","pending":0,"idle_ms":1000,"live":false},{"name":"web-3","pending":0,"idle_ms":null,"live":true},{"name":"web-4","pending":0,"idle_ms":3600000,"live":true}]}
	// {"group":"shop-email","event":"orders.placed","consumers":4,"pending":1,"lag":null,"oldest_pending_ms":1500,"dead_letters":0,"stale":1,"members":[{"name":"web-1","pending":1,"idle_ms":3600000,"live":false,"stale":true},{"name":"web-2","pending":0,"idle_ms":1000,"live":false,"stale":false},{"name":"web-3","pending":0,"idle_ms":null,"live":true,"stale":false},{"name":"web-4","pending":0,"idle_ms":3600000,"live":true,"stale":false}]}
}
