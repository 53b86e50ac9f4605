package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var dashboardAddr = regexp.MustCompile(`on (http://[^ ]+/) `)

// dashboardURL waits until the dashboard command serves and returns its URL.
func (s *started) dashboardURL(t *testing.T) string {
	t.Helper()
	var u string
	eventually(t, "the dashboard to serve", func() bool {
		select {
		case c := <-s.code:
			s.code <- c
			t.Fatalf("exited with %d: %s", c, s.err.String())
		default:
		}
		m := dashboardAddr.FindStringSubmatch(s.err.String())
		if m != nil {
			u = m[1]
		}
		return m != nil
	})
	return u
}

func httpGet(t *testing.T, u string) string {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, res.StatusCode, b)
	}
	return string(b)
}

func TestDashboardServesTheBroker(t *testing.T) {
	eachBroker(t, func(t *testing.T, b broker) {
		s := newShop(t, b)
		s.fire(t, Order{ID: 1, Fail: true})
		eventually(t, "a dead letter", func() bool { return len(s.deadLetters(t, "shop-email")) == 1 })

		args := []string{"--transport", b.url, "dashboard", "--listen", "127.0.0.1:0", "--read-only"}
		if b.name == "amqp" {
			args = append(args, "--group", "shop-email")
		}
		d := startCommand(t, args...)
		u := d.dashboardURL(t)
		if strings.Contains(d.err.String(), "guest:guest") {
			t.Errorf("the password is printed: %s", d.err.String())
		}
		if page := httpGet(t, u); !strings.Contains(page, "static/app.js") {
			t.Fatalf("page:\n%s", page)
		}
		session := httpGet(t, u+"api/session")
		if !strings.Contains(session, `"read_only":true`) || strings.Contains(session, "guest:guest") {
			t.Errorf("session: %s", session)
		}
		if ov := httpGet(t, u+"api/overview"); !strings.Contains(ov, `"group":"shop-email"`) {
			t.Errorf("overview lacks the group:\n%s", ov)
		}
		if m := httpGet(t, u+"metrics"); !regexp.MustCompile(`busline_group_dead_letters\{group="shop-email",event="[a-z.]*"\} 1`).MatchString(m) {
			t.Errorf("metrics lack the dead letter:\n%s", m)
		}
		d.cancel()
		if c := d.wait(t); c != exitOK {
			t.Errorf("exit %d after interrupt: %s", c, d.err.String())
		}
	})
}

func TestDashboardNeedsTokenOffLoopback(t *testing.T) {
	cleanEnv(t)
	t.Setenv("BUSLINE_DASHBOARD_TOKEN", "")
	mem := memoryBroker(t)
	r := run(t, "--transport", mem.url, "dashboard", "--listen", "0.0.0.0:0").expect(t, exitUsage)
	if !strings.Contains(r.stderr, "token") {
		t.Errorf("stderr %q does not say a token is needed", r.stderr)
	}
	t.Setenv("BUSLINE_DASHBOARD_TOKEN", "s3cret")
	d := startCommand(t, "--transport", mem.url, "dashboard", "--listen", "127.0.0.1:0")
	u := d.dashboardURL(t)
	res, err := http.Get(u + "api/overview")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("overview without the token from the environment: %d, want 401", res.StatusCode)
	}
}
