package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// ErrTokenRequired is returned by CheckListen for an address that is not
// loopback when no token is set.
var ErrTokenRequired = errors.New("dashboard: a token is required to listen on an address that is not loopback")

// CheckListen reports whether the dashboard may listen on addr
// ("host:port") with the given token: a loopback address (127.0.0.0/8,
// ::1, localhost) needs none; any other address, all interfaces included
// (":8089", "0.0.0.0:8089"), needs a token.
func CheckListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("dashboard: listen address %q: %w", addr, err)
	}
	if token != "" || IsLoopback(host) {
		return nil
	}
	return fmt.Errorf("%w: %s (pass a token, or listen on 127.0.0.1)", ErrTokenRequired, addr)
}

// IsLoopback reports whether host (a name or an IP address, without port)
// names only the loopback interface.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Cookie names. Both are HttpOnly and SameSite=Strict.
const (
	sessionCookie = "busline_dashboard_session"
	csrfCookie    = "busline_dashboard_csrf"
	csrfHeader    = "X-Busline-CSRF"
)

// guard holds the secrets of one handler: the access token and the key
// that binds CSRF tokens to their cookie.
type guard struct {
	token   string
	session string // the session cookie's value: HMAC of the token
	key     []byte // random per handler
	origin  *http.CrossOriginProtection
}

func newGuard(token string) *guard {
	g := &guard{token: token, key: make([]byte, 32), origin: http.NewCrossOriginProtection()}
	_, _ = rand.Read(g.key)
	if token != "" {
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("busline dashboard session"))
		g.session = hex.EncodeToString(m.Sum(nil))
	}
	return g
}

// authorized reports whether r carries the token: as a bearer header or
// as the session cookie.
func (g *guard) authorized(r *http.Request) bool {
	if g.token == "" {
		return true
	}
	if h, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(h, g.token) {
		return true
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && equal(c.Value, g.session)
}

// login checks a token given by a person and sets the session cookie.
func (g *guard) login(w http.ResponseWriter, r *http.Request, token string) bool {
	if g.token == "" || !equal(token, g.token) {
		return false
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: g.session, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	return true
}

// csrfToken returns the CSRF token bound to the request's CSRF cookie,
// setting a new cookie when the request has none.
func (g *guard) csrfToken(w http.ResponseWriter, r *http.Request) string {
	nonce := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 32 {
		nonce = c.Value
	} else {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		nonce = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: nonce, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		})
	}
	return g.bind(nonce)
}

func (g *guard) bind(nonce string) string {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte(nonce))
	return hex.EncodeToString(m.Sum(nil))
}

// checkAction lets an action through only when it is a POST from the
// page's own origin carrying the CSRF token bound to its cookie.
func (g *guard) checkAction(r *http.Request) error {
	if r.Method != http.MethodPost {
		return errors.New("actions are POST requests")
	}
	if err := g.origin.Check(r); err != nil {
		return fmt.Errorf("refused: %w", err)
	}
	if o := r.Header.Get("Origin"); o != "" && !sameHost(o, r.Host) {
		return errors.New("refused: the request comes from another origin")
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || !equal(r.Header.Get(csrfHeader), g.bind(c.Value)) {
		return errors.New("refused: missing or stale CSRF token; reload the page")
	}
	return nil
}

// sameHost reports whether the Origin header names host.
func sameHost(origin, host string) bool {
	_, rest, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(rest, host)
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
