package dashboard_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/dashboard"
)

// The dashboard mounted inside an application under /busline/, with the
// broker-side gauges on /busline/metrics.
func ExampleHandler() {
	b, err := bus.New(bus.Config{Service: "price-monitor", Transport: "memory://example-dashboard"})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	mux := http.NewServeMux()
	mux.Handle("/busline/", http.StripPrefix("/busline", dashboard.Handler(dashboard.Options{
		Transport: b.Transport(),
		Name:      "price-monitor",
		Token:     os.Getenv("BUSLINE_DASHBOARD_TOKEN"), // empty here: no token asked
	})))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/busline/metrics", nil))
	lines := bufio.NewScanner(strings.NewReader(rec.Body.String()))
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "busline_broker_up") {
			fmt.Println(lines.Text())
		}
	}
	// Output: busline_broker_up 1
}

// The rule busline dashboard applies before listening.
func ExampleCheckListen() {
	fmt.Println(dashboard.CheckListen("127.0.0.1:8089", ""))
	fmt.Println(dashboard.CheckListen("0.0.0.0:8089", ""))
	fmt.Println(dashboard.CheckListen("0.0.0.0:8089", "s3cret"))
	// Output:
	// <nil>
	// dashboard: a token is required to listen on an address that is not loopback: 0.0.0.0:8089 (pass a token, or listen on 127.0.0.1)
	// <nil>
}
