package dashboard_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/busline/busline/bus"
	"github.com/busline/busline/dashboard"
	"github.com/busline/busline/internal/brokertest"
	"github.com/busline/busline/internal/faults"
	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/redisstream" // redis://
)

// chromiumPath is the browser the tests drive: $BUSLINE_CHROMIUM, else
// Debian's chromium. Without one the test skips, or fails when
// BUSLINE_REQUIRE_BROKERS=1.
func chromiumPath(t *testing.T) string {
	t.Helper()
	want := os.Getenv("BUSLINE_CHROMIUM")
	if want == "" {
		want = "chromium"
	}
	path, err := exec.LookPath(want)
	if err != nil {
		brokertest.Unavailable(t, fmt.Sprintf("no browser for the dashboard test (%v); install it with: apt-get install -y chromium", err))
	}
	return path
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab and the function that closes the browser.
func browser(t *testing.T, ctx context.Context) (context.Context, func()) {
	t.Helper()
	path := chromiumPath(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // small /dev/shm in containers
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	tab, cancelTab := chromedp.NewContext(alloc)
	return tab, func() {
		cancelTab()
		cancelAlloc()
	}
}

type order struct {
	OrderID  string   `json:"order_id"`
	Customer string   `json:"customer"`
	Amount   float64  `json:"amount"`
	Items    []string `json:"items"`
}

// TestBrowser drives the page in headless Chromium against a real Redis
// and a running bus: the groups are listed, a permanently failed event
// shows up as a dead letter, and replaying it through the confirmation
// hands it to the handler again. With BUSLINE_DASHBOARD_SCREENSHOTS=DIR
// it also writes the screenshots of docs/dashboard.md into DIR.
func TestBrowser(t *testing.T) {
	brokertest.Reachable(t, brokertest.RedisAddr(), "redis-server --daemonize yes")
	screenshots := os.Getenv("BUSLINE_DASHBOARD_SCREENSHOTS") != ""
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tab, closeBrowser := browser(t, ctx)

	n := make([]byte, 4)
	_, _ = rand.Read(n)
	prefix := "dashtest-" + hex.EncodeToString(n) + ":"
	url := "redis://" + brokertest.RedisAddr() + "/0?prefix=" + prefix

	orders := bus.NewEvent[order]("shop", "order_placed")
	// Short blocking reads: a live consumer's idle time stays well under
	// the stale threshold of the screenshots.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := bus.New(bus.Config{Service: "shop", Process: "shop-1", Transport: url + "&block=300ms", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Bool
	healed := make(chan bus.Delivery[order], 1)
	if err := bus.Listen(b, orders, "billing", func(_ context.Context, d bus.Delivery[order]) error {
		if d.Payload.OrderID != "A-1042" {
			return nil
		}
		if failed.CompareAndSwap(false, true) {
			return bus.Permanent(fmt.Errorf("card declined for customer %s", d.Payload.Customer))
		}
		select {
		case healed <- d:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var emails sync.WaitGroup
	emails.Add(1)
	var once sync.Once
	if err := bus.Listen(b, orders, "send-receipt", func(context.Context, bus.Delivery[order]) error {
		once.Do(emails.Done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	closeBus := func() {
		if err := b.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	}

	// The dashboard opens its own connection, as busline dashboard does,
	// through a proxy the test stops to take the broker away.
	proxy, err := faults.StartProxy(brokertest.RedisAddr())
	if err != nil {
		closeBus()
		t.Fatal(err)
	}
	defer proxy.Stop()
	tr, err := transports.Open(ctx, "redis://"+proxy.Addr()+"/0?prefix="+prefix, transports.OpenOptions{Service: "busline"})
	if err != nil {
		closeBus()
		t.Fatal(err)
	}
	opts := dashboard.Options{Transport: tr, Name: "redis://" + brokertest.RedisAddr() + "/0", Refresh: 300 * time.Millisecond, Logger: quiet}
	if screenshots {
		opts.StaleAfter = 3 * time.Second
	}
	srv := httptest.NewServer(dashboard.Handler(opts))
	// Teardown in order: the browser (its event streams), the server, the
	// bus, then the keys.
	defer func() {
		closeBrowser()
		srv.CloseClientConnections()
		srv.Close()
		closeBus()
		cleanup(t, tr, prefix)
	}()

	id, err := bus.Fire(ctx, b, orders, order{OrderID: "A-1042", Customer: "c-77", Amount: 129.9, Items: []string{"kettle", "filters"}})
	if err != nil {
		t.Fatal(err)
	}
	emails.Wait()
	if screenshots {
		moreData(t, ctx, url, prefix, b, orders)
		stop := traffic(ctx, b, orders)
		defer stop()
	}

	run(t, tab, chromedp.Navigate(srv.URL))
	// The groups of the running bus are listed under their event.
	waitJS(t, tab, `document.querySelector('article[data-event="shop.order_placed"] tr[data-group="shop-billing"]') !== null &&
		document.querySelector('tr[data-group="shop-send-receipt"]') !== null`)
	// The dead letter shows in the group's row, then in its list.
	waitJS(t, tab, `document.querySelector('button.dead-link[data-dead="shop-billing"]') !== null`)
	click(t, tab, `button[data-toggle="shop-billing"]`)
	waitJS(t, tab, `document.querySelector('tr.members .member[data-consumer="shop-1"]') !== null`)
	// The running process holds an open subscription: tagged live, not stale.
	waitJS(t, tab, `document.querySelector('tr.members .member[data-consumer="shop-1"] .tag.live') !== null &&
		!document.querySelector('tr.members .member[data-consumer="shop-1"]').classList.contains('stale')`)
	if screenshots {
		click(t, tab, `button[data-toggle="warehouse-reserve-stock"]`)
		waitJS(t, tab, `document.querySelector('tr.members .member.stale[data-consumer="wh-7f3a"]') !== null`)
	}
	shot(t, tab, "overview.png")
	click(t, tab, `button.dead-link[data-dead="shop-billing"]`)
	waitJS(t, tab, `document.querySelector('#dead-list .dead-letter') !== null`)
	text, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(`#dead-list`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"card declined for customer c-77", id, `"order_id": "A-1042"`} {
		if !strings.Contains(text, want) {
			t.Errorf("dead-letter list lacks %q:\n%s", want, text)
		}
	}
	shotElement(t, tab, "#dead", "dead-letters.png")

	// Replay through the confirmation: the handler gets the event again.
	click(t, tab, `#dead-list button.replay`)
	waitJS(t, tab, `document.getElementById('confirm').open`)
	shot(t, tab, "confirm.png")
	click(t, tab, `#confirm-ok`)
	select {
	case d := <-healed:
		if d.ID != id || d.Payload.OrderID != "A-1042" {
			t.Errorf("replayed delivery: ID %s order %s; want %s A-1042", d.ID, d.Payload.OrderID, id)
		}
	case <-ctx.Done():
		t.Fatal("the handler never got the replayed event")
	}
	waitJS(t, tab, `document.getElementById('dead-list').textContent.includes('No dead letters')`)
	waitJS(t, tab, `document.querySelector('button[data-dead="shop-billing"]').textContent === '0'`)

	// A live tail shows an event fired while it follows.
	click(t, tab, `button[data-tail="shop.order_placed"]`)
	waitJS(t, tab, `document.getElementById('tail-status').textContent.startsWith('Following')`)
	if _, err := bus.Fire(ctx, b, orders, order{OrderID: "A-1043", Customer: "c-12", Amount: 18.5, Items: []string{"mug"}}); err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, `document.getElementById('tail-list').textContent.includes('A-1043')`)
	if screenshots {
		for i := range 3 {
			if _, err := bus.Fire(ctx, b, orders, order{OrderID: fmt.Sprintf("A-10%d", 44+i), Customer: "c-3", Amount: 9.99, Items: []string{"tea"}}); err != nil {
				t.Fatal(err)
			}
		}
		waitJS(t, tab, `document.getElementById('tail-list').children.length >= 4`)
	}
	shotElement(t, tab, "#tail", "tail.png")

	// The broker goes away: the page says so, then recovers.
	proxy.Stop()
	waitJS(t, tab, `document.getElementById('status').dataset.state === 'broker-down' && !document.getElementById('banner').hidden`)
	if screenshots {
		run(t, tab, chromedp.Evaluate[any](`window.scrollTo(0, 0)`))
	}
	shot(t, tab, "unreachable.png")
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, `document.getElementById('status').dataset.state === 'live' && document.getElementById('banner').hidden`)

	// A phone-sized screen.
	if screenshots {
		run(t, tab, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
		run(t, tab, chromedp.Evaluate[any](`window.scrollTo(0, 0)`))
		shot(t, tab, "phone.png")
	}
}

// click clicks the element sel selects, as a user does: again when the
// page re-rendered it between finding it and clicking it (the overview
// re-renders on every refresh whose figures changed; CDP then answers
// -32000, no node with the id it found).
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := chromedp.Run(ctx, chromedp.Click(chromedp.CSS(sel)))
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "(-32000)") || time.Now().After(deadline) {
			t.Fatalf("click %s: %v", sel, err)
		}
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) {
	t.Helper()
	if _, err := chromedp.Run(ctx, a); err != nil {
		t.Fatal(err)
	}
}

// traffic fires an event every 400 ms until stopped, so that the
// screenshots show a rate and live consumers that read.
func traffic(ctx context.Context, b *bus.Bus, orders bus.Event[order]) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(400 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-t.C:
				_, _ = bus.Fire(ctx, b, orders, order{OrderID: fmt.Sprintf("B-%d", 2000+i), Customer: "c-9", Amount: 12.5, Items: []string{"beans"}})
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// moreData gives the screenshots more to show: a group whose only process
// took two events and died (a stale consumer holding pending events, and
// lag as events keep coming).
func moreData(t *testing.T, ctx context.Context, url, prefix string, b *bus.Bus, orders bus.Event[order]) {
	t.Helper()
	wh, err := bus.New(bus.Config{Service: "warehouse", Process: "wh-7f3a", Transport: url,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Listen(wh, orders, "reserve-stock", func(context.Context, bus.Delivery[order]) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := wh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wh.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := bus.Fire(ctx, b, orders, order{OrderID: fmt.Sprintf("A-10%d", 30+i), Customer: "c-5", Amount: 42, Items: []string{"teapot"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // fired for later: the page counts them
		if _, err := bus.Fire(ctx, b, orders, order{OrderID: fmt.Sprintf("L-%d", i), Customer: "c-8", Amount: 5, Items: []string{"gift card"}},
			bus.WithDelay(time.Hour+time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: brokertest.RedisAddr()})
	defer c.Close()
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: "warehouse-reserve-stock", Consumer: "wh-7f3a", Streams: []string{prefix + orders.Name(), ">"}, Count: 2,
	}).Err(); err != nil {
		t.Fatal(err)
	}
}

// waitJS waits until the JavaScript expression is true in the page, across
// a navigation the page is making (a form submitted).
func waitJS(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		// -32000: the page's JavaScript context went away under the poll
		// (navigated, replaced); poll the new one.
		if strings.Contains(err.Error(), "(-32000)") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage:\n%s", expr, err, html)
	}
}

// shot saves a screenshot of the viewport into $BUSLINE_DASHBOARD_SCREENSHOTS.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("BUSLINE_DASHBOARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	hideToast(t, ctx)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	save(t, dir, name, png)
}

func shotElement(t *testing.T, ctx context.Context, sel, name string) {
	t.Helper()
	dir := os.Getenv("BUSLINE_DASHBOARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	hideToast(t, ctx)
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		t.Fatal(err)
	}
	save(t, dir, name, png)
}

func hideToast(t *testing.T, ctx context.Context) {
	t.Helper()
	run(t, ctx, chromedp.Evaluate[any](`document.getElementById('toast').hidden = true`))
}

func save(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cleanup closes the dashboard's transport and deletes the test's keys.
func cleanup(t *testing.T, tr transports.Transport, prefix string) {
	t.Helper()
	_ = tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: brokertest.RedisAddr()})
	defer c.Close()
	if keys, err := c.Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
		_ = c.Del(ctx, keys...).Err()
	}
}

// pageOn serves a dashboard with opts and starts a headless Chromium for
// it; both end with the test, the browser first (its event streams).
func pageOn(t *testing.T, opts dashboard.Options) (tab context.Context, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	srv := httptest.NewServer(dashboard.Handler(opts))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
	})
	tab, closeBrowser := browser(t, ctx)
	t.Cleanup(closeBrowser)
	return tab, srv.URL
}

// TestBrowserLoginReadOnly logs in through the form in headless Chromium
// (the session and CSRF cookies are SameSite=Strict and HttpOnly) and
// finds the dead letters of a read-only dashboard without their buttons.
func TestBrowserLoginReadOnly(t *testing.T) {
	b, _ := deadBus(t)
	fire(t, b, "R-1")
	tab, url := pageOn(t, dashboard.Options{
		Transport: b.Transport(), Name: "memory://shop", Token: "s3cret", ReadOnly: true, Refresh: 300 * time.Millisecond,
	})
	run(t, tab, chromedp.Navigate(url))
	run(t, tab, chromedp.SendKeys(chromedp.CSS(`#token`), "wrong"))
	click(t, tab, `button[type="submit"]`)
	waitJS(t, tab, `document.body.textContent.includes('not the right one')`)
	run(t, tab, chromedp.SendKeys(chromedp.CSS(`#token`), "s3cret"))
	click(t, tab, `button[type="submit"]`)
	waitJS(t, tab, `document.getElementById('readonly') !== null && !document.getElementById('readonly').hidden`)
	waitJS(t, tab, `document.querySelector('button.dead-link[data-dead="shop-billing"]') !== null`)
	click(t, tab, `button.dead-link[data-dead="shop-billing"]`)
	waitJS(t, tab, `document.querySelector('#dead-list .dead-letter') !== null`)
	waitJS(t, tab, `document.querySelector('#dead-list button.replay') === null &&
		document.getElementById('dead-replay-all').hidden && document.getElementById('dead-purge').hidden`)
	loc, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, "token") {
		t.Errorf("the token is in the address bar: %s", loc)
	}
}

// TestBrowserTailRefused types a name that is not an event into the tail
// and gets the reason instead of a tail that never starts.
func TestBrowserTailRefused(t *testing.T) {
	b, _ := deadBus(t)
	tab, url := pageOn(t, dashboard.Options{Transport: b.Transport()})
	run(t, tab, chromedp.Navigate(url))
	waitJS(t, tab, `document.getElementById('status').dataset.state === 'live'`)
	// Focused, the field is not filled in by the next refresh.
	run(t, tab, chromedp.Evaluate[any](`(() => { const i = document.getElementById('tail-event'); i.focus(); i.value = '' })()`))
	run(t, tab, chromedp.SendKeys(chromedp.CSS(`#tail-event`), "Not An Event"))
	click(t, tab, `#tail-toggle`)
	waitJS(t, tab, `document.getElementById('tail-status').textContent.startsWith('Cannot follow Not An Event: bus: invalid event')`)
}

// TestBrowserPanelsClearOfTheHeader opens the dead letters from the
// group's row, on a laptop and on a phone: the panel's title and buttons
// land below the sticky header, where a click reaches them, and Replay
// all works from there.
func TestBrowserPanelsClearOfTheHeader(t *testing.T) {
	b, later := deadBus(t)
	fire(t, b, "H-1")
	fire(t, b, "H-2")
	tab, url := pageOn(t, dashboard.Options{Transport: b.Transport(), Name: "memory://shop", Refresh: 300 * time.Millisecond})
	// The element at the centre of the button is the button: nothing covers it.
	clear := `(() => { const b = document.getElementById('dead-replay-all'); const r = b.getBoundingClientRect();
		return r.height > 0 && document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === b; })()`
	for _, size := range [][2]int64{{1280, 500}, {390, 844}} {
		run(t, tab, chromedp.EmulateViewport(size[0], size[1]))
		run(t, tab, chromedp.Navigate(url))
		// Enough content above the panel that opening it scrolls.
		run(t, tab, chromedp.Evaluate[any](`document.getElementById('summary').style.marginBottom = '2000px'`))
		waitJS(t, tab, `document.querySelector('button.dead-link[data-dead="shop-billing"]') !== null`)
		click(t, tab, `button.dead-link[data-dead="shop-billing"]`)
		waitJS(t, tab, `document.querySelector('#dead-list .dead-letter') !== null && window.scrollY > 0`)
		waitJS(t, tab, clear)
	}
	click(t, tab, `#dead-replay-all`)
	waitJS(t, tab, `document.getElementById('confirm').open`)
	click(t, tab, `#confirm-ok`)
	waitJS(t, tab, `document.getElementById('toast').textContent.startsWith('Replayed 2')`)
	b.MustWaitIdle(t)
	if n := later.Load(); n != 2 {
		t.Errorf("the handler got %d replayed events, want 2", n)
	}
}
