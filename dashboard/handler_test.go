package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/bus/bustest"
	"github.com/busline/busline/dashboard"
	"github.com/busline/busline/transports"
)

var paid = bus.NewEvent[order]("shop", "order_paid")

// deadBus is a started memory bus whose listener "billing" dead-letters the
// first delivery of every event and counts the later ones.
func deadBus(t *testing.T) (*bustest.Bus, *atomic.Int32) {
	t.Helper()
	b := bustest.New(t, bus.Config{Service: "shop"})
	var later atomic.Int32
	seen := map[string]bool{}
	if err := bus.Listen(b.Bus, paid, "billing", func(_ context.Context, d bus.Delivery[order]) error {
		if !seen[d.ID] {
			seen[d.ID] = true
			return bus.Permanent(errors.New("card declined"))
		}
		later.Add(1)
		return nil
	}, bus.WithConcurrency(1)); err != nil {
		t.Fatal(err)
	}
	b.Start(t)
	return b, &later
}

func fire(t *testing.T, b *bustest.Bus, id string) string {
	t.Helper()
	eid, err := bus.Fire(context.Background(), b.Bus, paid, order{OrderID: id})
	if err != nil {
		t.Fatal(err)
	}
	b.MustWaitIdle(t)
	return eid
}

// client is an HTTP client with a cookie jar, as a browser has.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func getJSON(t *testing.T, c *http.Client, u string, v any) int {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil && res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return res.StatusCode
}

type session struct {
	CSRF     string `json:"csrf"`
	ReadOnly bool   `json:"read_only"`
	Name     string `json:"name"`
}

func post(t *testing.T, c *http.Client, u, csrf, origin, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set("X-Busline-CSRF", csrf)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var doc map[string]any
	_ = json.NewDecoder(res.Body).Decode(&doc)
	return res.StatusCode, doc
}

func TestDeadLettersListReplayPurge(t *testing.T) {
	b, later := deadBus(t)
	id1 := fire(t, b, "A-1")
	fire(t, b, "A-2")
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Transport: b.Transport(), Name: "memory://shop"}))
	defer srv.Close()
	c := client(t)

	var s session
	if code := getJSON(t, c, srv.URL+"/api/session", &s); code != http.StatusOK || s.CSRF == "" || s.Name != "memory://shop" {
		t.Fatalf("session: %d %+v", code, s)
	}
	var list struct {
		DeadLetters []struct {
			ID, EventID, Reason, Payload string
			Attempts                     int
		} `json:"dead_letters"`
	}
	getJSON(t, c, srv.URL+"/api/dead?group=shop-billing", &list)
	if len(list.DeadLetters) != 2 {
		t.Fatalf("dead letters: %+v", list)
	}
	d := list.DeadLetters[0]
	if !strings.Contains(d.Reason, "card declined") || !strings.Contains(d.Payload, "\n  \"order_id\": \"A-1\"") {
		t.Errorf("dead letter: %+v", d)
	}

	// Actions need the CSRF token bound to the cookie, from the same origin.
	body := `{"group":"shop-billing","id":"` + d.ID + `"}`
	if code, _ := post(t, c, srv.URL+"/api/dead/replay", "", "", body); code != http.StatusForbidden {
		t.Errorf("replay without CSRF token: %d, want 403", code)
	}
	if code, _ := post(t, c, srv.URL+"/api/dead/replay", "0123", "", body); code != http.StatusForbidden {
		t.Errorf("replay with a wrong CSRF token: %d, want 403", code)
	}
	if code, _ := post(t, client(t), srv.URL+"/api/dead/replay", s.CSRF, "", body); code != http.StatusForbidden {
		t.Errorf("replay with a token but without its cookie: %d, want 403", code)
	}
	if code, _ := post(t, c, srv.URL+"/api/dead/replay", s.CSRF, "https://evil.example", body); code != http.StatusForbidden {
		t.Errorf("replay from another origin: %d, want 403", code)
	}
	if n := len(b.DeadLetters("shop-billing")); n != 2 {
		t.Fatalf("refused actions changed the dead letters: %d left", n)
	}
	if code, doc := post(t, c, srv.URL+"/api/dead/replay", s.CSRF, srv.URL, body); code != http.StatusOK || doc["replayed"] != 1.0 {
		t.Fatalf("replay: %d %v", code, doc)
	}
	// A dead letter that is not there (any more) is 404, not a broker failure.
	if code, doc := post(t, c, srv.URL+"/api/dead/replay", s.CSRF, srv.URL, body); code != http.StatusNotFound {
		t.Errorf("replay of a dead letter replayed already: %d %v, want 404", code, doc)
	}
	if code := getJSON(t, c, srv.URL+"/api/dead?group="+strings.Repeat("x", 600), nil); code != http.StatusBadRequest {
		t.Errorf("a 600-byte group: %d, want 400", code)
	}
	// A group the broker does not know (a typo) is 404, not an empty group.
	if code := getJSON(t, c, srv.URL+"/api/dead?group=shop-bil--ling", nil); code != http.StatusNotFound {
		t.Errorf("dead letters of an unknown group: %d, want 404", code)
	}
	for _, path := range []string{"/api/dead/purge", "/api/dead/replay"} {
		if code, doc := post(t, c, srv.URL+path, s.CSRF, srv.URL, `{"group":"shop-bilng","all":true}`); code != http.StatusNotFound {
			t.Errorf("%s of an unknown group: %d %v, want 404", path, code, doc)
		}
	}
	b.MustWaitIdle(t)
	if later.Load() != 1 || len(b.DeadLetters("shop-billing")) != 1 {
		t.Fatalf("after replay: handler got %d replays, %d dead letters left", later.Load(), len(b.DeadLetters("shop-billing")))
	}
	if got := b.DeadLetters("shop-billing")[0].Message.UUID; got == id1 {
		t.Errorf("the replayed dead letter is still there")
	}
	if code, doc := post(t, c, srv.URL+"/api/dead/purge", s.CSRF, "", `{"group":"shop-billing"}`); code != http.StatusOK || doc["purged"] != 1.0 {
		t.Fatalf("purge: %d %v", code, doc)
	}
	fire(t, b, "A-3")
	fire(t, b, "A-4")
	if code, doc := post(t, c, srv.URL+"/api/dead/replay", s.CSRF, "", `{"group":"shop-billing","all":true}`); code != http.StatusOK || doc["replayed"] != 2.0 {
		t.Fatalf("replay all: %d %v", code, doc)
	}
	b.MustWaitIdle(t)
	if later.Load() != 3 {
		t.Errorf("after replay all: handler got %d replays, want 3", later.Load())
	}
}

func TestReadOnlyRefusesActions(t *testing.T) {
	b, _ := deadBus(t)
	fire(t, b, "A-1")
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Transport: b.Transport(), ReadOnly: true}))
	defer srv.Close()
	c := client(t)
	var s session
	getJSON(t, c, srv.URL+"/api/session", &s)
	if !s.ReadOnly {
		t.Error("session does not say read-only")
	}
	for _, path := range []string{"/api/dead/replay", "/api/dead/purge"} {
		if code, _ := post(t, c, srv.URL+path, s.CSRF, "", `{"group":"shop-billing","all":true}`); code != http.StatusForbidden {
			t.Errorf("%s in read-only mode: %d, want 403", path, code)
		}
	}
	if n := len(b.DeadLetters("shop-billing")); n != 1 {
		t.Errorf("read-only dashboard changed the dead letters: %d", n)
	}
}

func TestTokenRequired(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "shop"})
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Transport: b.Transport(), Token: "s3cret"}))
	defer srv.Close()
	c := client(t)
	for _, path := range []string{"/api/overview", "/api/session", "/metrics", "/api/dead?group=x"} {
		if code := getJSON(t, c, srv.URL+path, nil); code != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", path, code)
		}
	}
	res, err := c.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(page), `name="token"`) {
		t.Errorf("page without token: %d, want 401 and the login form", res.StatusCode)
	}
	// A bearer header, as Prometheus sends.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("metrics with bearer token: %d", res.StatusCode)
	}
	// The login form sets the session cookie; a wrong token does not.
	res, err = c.PostForm(srv.URL+"/login", url.Values{"token": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); loc != "./?denied=1" {
		t.Errorf("a wrong login redirects to %q", loc)
	}
	if code := getJSON(t, c, srv.URL+"/api/overview", nil); code != http.StatusUnauthorized {
		t.Errorf("after a wrong login: %d, want 401", code)
	}
	if page := getStatus(t, c, srv.URL+"/?denied=1", http.StatusUnauthorized); !strings.Contains(page, "not the right one") {
		t.Errorf("the login page after a wrong token does not say so:\n%s", page)
	}
	res, err = c.PostForm(srv.URL+"/login", url.Values{"token": {"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("login: %d, want 303", res.StatusCode)
	}
	if code := getJSON(t, c, srv.URL+"/api/overview", nil); code != http.StatusOK {
		t.Errorf("after login: %d, want 200", code)
	}
}

func TestCheckListen(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8089", "", true},
		{"127.0.0.2:8089", "", true},
		{"localhost:8089", "", true},
		{"[::1]:8089", "", true},
		{":8089", "", false},
		{"0.0.0.0:8089", "", false},
		{"[::]:8089", "", false},
		{"10.1.2.3:8089", "", false},
		{"dashboard.internal:8089", "", false},
		{"0.0.0.0:8089", "t", true},
	} {
		err := dashboard.CheckListen(tc.addr, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListen(%q, %q) = %v", tc.addr, tc.token, err)
		}
		if err != nil && tc.addr != "" && !errors.Is(err, dashboard.ErrTokenRequired) {
			t.Errorf("CheckListen(%q): %v does not wrap ErrTokenRequired", tc.addr, err)
		}
	}
	if err := dashboard.CheckListen("no-port", ""); err == nil || errors.Is(err, dashboard.ErrTokenRequired) {
		t.Errorf("CheckListen without a port: %v", err)
	}
}

// fixed is an inspector that reports a fixed inspection, or fails.
type fixed struct {
	res  *transports.Inspection
	fail atomic.Bool
}

func (f *fixed) Inspect(context.Context, transports.InspectOptions) (*transports.Inspection, error) {
	if f.fail.Load() {
		return nil, errors.New("connection refused")
	}
	return f.res, nil
}

func TestMetrics(t *testing.T) {
	in := &fixed{res: &transports.Inspection{
		Streams: []transports.StreamInfo{{Event: "shop.order_paid", Length: 42, Groups: 2}},
		Groups: []transports.GroupInfo{
			{Group: "shop-billing", Event: "shop.order_paid", Consumers: 2, Pending: 3, Lag: 5, OldestPending: 1500 * time.Millisecond, DeadLetters: 1,
				Members: []transports.ConsumerInfo{{Name: `p"1`, Pending: 3, Idle: 2 * time.Second}, {Name: "p2", Idle: transports.Unknown, Live: true}}},
			{Group: "mail-send", Event: "", Queue: "busline.mail-send", Consumers: 1, Pending: transports.Unknown, Lag: 7, OldestPending: transports.Unknown},
		},
	}}
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Inspector: in, Refresh: time.Nanosecond}))
	defer srv.Close()
	text := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		"# TYPE busline_stream_length gauge\n",
		`busline_broker_up 1` + "\n",
		`busline_stream_length{event="shop.order_paid"} 42` + "\n",
		`busline_group_lag{group="shop-billing",event="shop.order_paid"} 5` + "\n",
		`busline_group_pending{group="shop-billing",event="shop.order_paid"} 3` + "\n",
		`busline_group_oldest_pending_seconds{group="shop-billing",event="shop.order_paid"} 1.5` + "\n",
		`busline_group_consumers{group="shop-billing",event="shop.order_paid"} 2` + "\n",
		`busline_group_dead_letters{group="shop-billing",event="shop.order_paid"} 1` + "\n",
		`busline_consumer_pending{group="shop-billing",event="shop.order_paid",consumer="p\"1"} 3` + "\n",
		`busline_consumer_idle_seconds{group="shop-billing",event="shop.order_paid",consumer="p\"1"} 2` + "\n",
		`busline_consumer_live{group="shop-billing",event="shop.order_paid",consumer="p\"1"} 0` + "\n",
		`busline_consumer_live{group="shop-billing",event="shop.order_paid",consumer="p2"} 1` + "\n",
		`busline_group_lag{group="mail-send",event=""} 7` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, `busline_group_pending{group="mail-send"`) || strings.Contains(text, `oldest_pending_seconds{group="mail-send"`) ||
		strings.Contains(text, `busline_consumer_idle_seconds{group="shop-billing",event="shop.order_paid",consumer="p2"}`) {
		t.Errorf("unknown figures exported:\n%s", text)
	}
	if n := strings.Count(text, "# TYPE busline_group_lag gauge"); n != 1 {
		t.Errorf("TYPE of busline_group_lag %d times", n)
	}
	// The broker goes away: up is 0, the last figures stay.
	in.fail.Store(true)
	text = get(t, srv.URL+"/metrics")
	if !strings.Contains(text, "busline_broker_up 0\n") || !strings.Contains(text, `busline_stream_length{event="shop.order_paid"} 42`) {
		t.Errorf("metrics while the broker is down:\n%s", text)
	}
}

// get returns the body of u, failing the test unless it answers 200.
func get(t *testing.T, u string) string {
	t.Helper()
	return getStatus(t, http.DefaultClient, u, http.StatusOK)
}

// getStatus returns the body of u, failing the test unless it answers want.
func getStatus(t *testing.T, c *http.Client, u string, want int) string {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", u, res.StatusCode, want, b)
	}
	return string(b)
}

func TestOverviewShowsBrokerDownAndRecovery(t *testing.T) {
	in := &fixed{res: &transports.Inspection{Groups: []transports.GroupInfo{{Group: "g", Event: "a.b", Members: []transports.ConsumerInfo{
		{Name: "old", Idle: time.Hour}, {Name: "new", Idle: time.Second},
	}}}}}
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Inspector: in, Refresh: time.Nanosecond, StaleAfter: time.Minute}))
	defer srv.Close()
	type ov struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Groups []struct {
			Stale   int `json:"stale"`
			Members []struct {
				Name  string `json:"name"`
				Stale bool   `json:"stale"`
			} `json:"members"`
		} `json:"groups"`
	}
	var o ov
	getJSON(t, http.DefaultClient, srv.URL+"/api/overview", &o)
	if !o.OK || len(o.Groups) != 1 || o.Groups[0].Stale != 1 || !o.Groups[0].Members[0].Stale || o.Groups[0].Members[1].Stale {
		t.Fatalf("overview: %+v", o)
	}
	in.fail.Store(true)
	o = ov{}
	getJSON(t, http.DefaultClient, srv.URL+"/api/overview", &o)
	if o.OK || !strings.Contains(o.Error, "connection refused") || len(o.Groups) != 1 {
		t.Fatalf("overview with the broker down: %+v", o)
	}
	in.fail.Store(false)
	o = ov{}
	getJSON(t, http.DefaultClient, srv.URL+"/api/overview", &o)
	if !o.OK || o.Error != "" {
		t.Fatalf("overview after recovery: %+v", o)
	}
}

func TestTailStream(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "shop"})
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Transport: b.Transport()}))
	defer srv.Close()
	if code := getJSON(t, http.DefaultClient, srv.URL+"/api/tail?event=Not+An+Event", nil); code != http.StatusBadRequest {
		t.Errorf("tail of an invalid name: %d, want 400", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/tail?event=shop.order_paid", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := bufio.NewScanner(res.Body)
	next := func(prefix string) string {
		t.Helper()
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("stream ended before %q: %v", prefix, lines.Err())
		return ""
	}
	next("event: ready")
	id, err := bus.Fire(ctx, b.Bus, paid, order{OrderID: "T-9"})
	if err != nil {
		t.Fatal(err)
	}
	next("event: event")
	data := next("data: ")
	if !strings.Contains(data, id) || !strings.Contains(data, `T-9`) {
		t.Errorf("tailed event: %s", data)
	}
}

func TestPageIsSelfContained(t *testing.T) {
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{}))
	defer srv.Close()
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		body := get(t, srv.URL+path)
		for _, remote := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(body, remote) {
				t.Errorf("%s refers to %q", path, remote)
			}
		}
	}
	// Without an inspector the page says so instead of failing.
	var o struct {
		Unsupported bool `json:"unsupported"`
	}
	getJSON(t, http.DefaultClient, srv.URL+"/api/overview", &o)
	if !o.Unsupported {
		t.Error("overview without an inspector does not say unsupported")
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/ops/bus/", http.StripPrefix("/ops/bus", dashboard.Handler(dashboard.Options{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := client(t)
	res, err := c.Get(srv.URL + "/ops/bus")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); !strings.HasSuffix(loc, "/ops/bus/") {
		t.Errorf("redirect to %q, want /ops/bus/", loc)
	}
	if !strings.Contains(get(t, srv.URL+"/ops/bus/"), `src="static/app.js"`) {
		t.Error("page does not use relative links")
	}
	get(t, srv.URL+"/ops/bus/static/app.js")
	get(t, srv.URL+"/ops/bus/metrics")
}

func TestLoginUnderPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/ops/bus/", http.StripPrefix("/ops/bus", dashboard.Handler(dashboard.Options{Token: "s3cret"})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar} // follows redirects, as a browser does
	res, err := c.PostForm(srv.URL+"/ops/bus/login", url.Values{"token": {"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Request.URL.Path != "/ops/bus/" || res.StatusCode != http.StatusOK || !strings.Contains(string(page), "static/app.js") {
		t.Errorf("after login: %s %d, want the page at /ops/bus/", res.Request.URL.Path, res.StatusCode)
	}
	res, err = c.Get(srv.URL + "/ops/bus/?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.String() != srv.URL+"/ops/bus/" {
		t.Errorf("login by link ends at %s, want the page without the token", res.Request.URL)
	}
}

func TestScheduledEvents(t *testing.T) {
	b := bustest.New(t, bus.Config{Service: "shop"})
	reminders := bus.NewEvent[order]("shop", "reminder_due")
	ctx := context.Background()
	for range 2 {
		if _, err := bus.Fire(ctx, b.Bus, reminders, order{OrderID: "later"}, bus.WithDelay(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{Transport: b.Transport()}))
	defer srv.Close()
	var o struct {
		Events []struct {
			Event     string     `json:"event"`
			Length    int64      `json:"length"`
			Scheduled *int64     `json:"scheduled"`
			NextDue   *time.Time `json:"next_due"`
		} `json:"events"`
	}
	getJSON(t, http.DefaultClient, srv.URL+"/api/overview", &o)
	if len(o.Events) != 1 || o.Events[0].Event != "shop.reminder_due" || o.Events[0].Scheduled == nil || *o.Events[0].Scheduled != 2 ||
		o.Events[0].NextDue == nil || time.Until(*o.Events[0].NextDue) < 50*time.Minute {
		t.Fatalf("overview events: %+v", o.Events)
	}
	m := get(t, srv.URL+"/metrics")
	if !strings.Contains(m, `busline_event_scheduled{event="shop.reminder_due"} 2`+"\n") || !strings.Contains(m, `busline_event_next_due_timestamp_seconds{event="shop.reminder_due"} `) {
		t.Errorf("metrics lack the scheduled events:\n%s", m)
	}
}

func TestLoopbackHostOnly(t *testing.T) {
	srv := httptest.NewServer(dashboard.LoopbackHostOnly(dashboard.Handler(dashboard.Options{Inspector: &fixed{res: &transports.Inspection{}}})))
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	for host, want := range map[string]int{
		"127.0.0.1:" + port:    http.StatusOK,
		"localhost:" + port:    http.StatusOK,
		"[::1]:" + port:        http.StatusOK,
		"localhost":            http.StatusOK,
		"evil.example:" + port: http.StatusMisdirectedRequest, // a name rebound to 127.0.0.1
		"evil.example":         http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io":     http.StatusMisdirectedRequest,
	} {
		for _, path := range []string{"/", "/api/session", "/metrics"} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			req.Host = host
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != want {
				t.Errorf("Host %s %s: %d, want %d: %s", host, path, res.StatusCode, want, b)
			}
		}
	}
	// An action from a rebound name is refused before any CSRF check.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/dead/purge", strings.NewReader(`{"group":"g"}`))
	req.Host = "evil.example"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("purge from a rebound name: %d", res.StatusCode)
	}
}

// TestNameShownWithoutSecrets: an application that passes its raw
// transport URL as the name does not show its secrets on the page.
func TestNameShownWithoutSecrets(t *testing.T) {
	srv := httptest.NewServer(dashboard.Handler(dashboard.Options{
		Inspector: &fixed{res: &transports.Inspection{}},
		Name:      "redis://:hunter2@10.0.0.5:6379/0?master_name=m&sentinel_password=hunter3",
	}))
	defer srv.Close()
	for _, path := range []string{"/", "/api/session"} {
		body := get(t, srv.URL+path)
		if strings.Contains(body, "hunter2") || strings.Contains(body, "hunter3") {
			t.Errorf("%s shows a secret:\n%s", path, body)
		}
		if !strings.Contains(body, "10.0.0.5:6379") {
			t.Errorf("%s lacks the name:\n%s", path, body)
		}
	}
}
