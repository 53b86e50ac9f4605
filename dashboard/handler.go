package dashboard

import (
	"bytes"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var staticFiles embed.FS

// contentSecurity keeps the page to its own origin: no script, style,
// image or connection anywhere else, no framing.
const contentSecurity = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// handler is the dashboard: the page, its JSON and event-stream API, and /metrics.
type handler struct {
	o     Options
	guard *guard
	poll  *poller
	mux   *http.ServeMux
}

// Handler returns the dashboard as an http.Handler serving, relative to
// where it is mounted: the page at "/", its API under "/api/", the
// Prometheus gauges at "/metrics". Mount it under a path prefix with
// http.StripPrefix. It runs nothing in the background: each viewer's
// event stream polls the broker (shared between viewers, at most once per
// half Options.Refresh) for as long as the viewer stays, and a live tail
// lasts as long as its request.
func Handler(opts Options) http.Handler {
	o := opts.withDefaults()
	h := &handler{o: o, guard: newGuard(o.Token), poll: newPoller(o), mux: http.NewServeMux()}
	static, _ := fs.Sub(staticFiles, "static")
	files := http.FileServerFS(static)
	h.mux.Handle("GET /static/", http.StripPrefix("/static", files))
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("POST /login", h.loginForm)
	h.mux.HandleFunc("GET /api/session", h.needAuth(h.session))
	h.mux.HandleFunc("GET /api/overview", h.needAuth(h.overviewJSON))
	h.mux.HandleFunc("GET /api/stream", h.needAuth(h.stream))
	h.mux.HandleFunc("GET /api/dead", h.needAuth(h.deadList))
	h.mux.HandleFunc("POST /api/dead/replay", h.needAuth(h.action(h.deadReplay)))
	h.mux.HandleFunc("POST /api/dead/purge", h.needAuth(h.action(h.deadPurge)))
	h.mux.HandleFunc("GET /api/tail", h.needAuth(h.tail))
	h.mux.HandleFunc("GET /metrics", h.needAuth(h.metrics))
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurity)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if r.URL.Path == "" {
		// Mounted under a prefix and asked without the trailing slash:
		// the page's relative links need it.
		http.Redirect(w, r, strings.SplitN(r.RequestURI, "?", 2)[0]+"/", http.StatusFound)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// needAuth answers 401 to a request without the token.
func (h *handler) needAuth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.guard.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="busline dashboard"`)
			writeError(w, http.StatusUnauthorized, "a token is required: log in on the page, or send Authorization: Bearer TOKEN")
			return
		}
		next(w, r)
	}
}

// action refuses actions in read-only mode and without the CSRF token.
func (h *handler) action(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.o.ReadOnly {
			writeError(w, http.StatusForbidden, "the dashboard is read-only")
			return
		}
		if err := h.guard.checkAction(r); err != nil {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		next(w, r)
	}
}

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	if tok := r.URL.Query().Get("token"); tok != "" && h.guard.login(w, r, tok) {
		// Logged in from a link: drop the token from the address bar.
		seeOther(w, "./")
		return
	}
	page := "index.html"
	status := http.StatusOK
	if !h.guard.authorized(r) {
		page, status = "login.html", http.StatusUnauthorized
	}
	body, err := staticFiles.ReadFile("static/" + page)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if status == http.StatusOK {
		// The first figures travel with the page (a JSON data block, which
		// the Content-Security-Policy allows as it is never run), so the page
		// is filled before any request of its own.
		initial, err := json.Marshal(struct {
			Session  sessionDoc `json:"session"`
			Overview *overview  `json:"overview"`
		}{h.sessionDoc(w, r), h.poll.get(r.Context())})
		if err == nil {
			block := append(append([]byte(`<script type="application/json" id="initial">`), initial...), "</script>"...)
			body = bytes.Replace(body, []byte("<!--initial-->"), block, 1)
		}
	}
	if status == http.StatusUnauthorized && r.URL.Query().Has("denied") {
		body = bytes.Replace(body, []byte("<!--denied-->"), []byte(`<p class="bad" role="alert">That token is not the right one.</p>`), 1)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if err := h.guard.origin.Check(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if h.guard.login(w, r, r.PostFormValue("token")) {
		seeOther(w, "./")
		return
	}
	seeOther(w, "./?denied=1")
}

// seeOther redirects to a location relative to the request's own URL, as
// the browser sees it: http.Redirect would resolve it against the path
// left after http.StripPrefix and leave the mount point.
func seeOther(w http.ResponseWriter, loc string) {
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusSeeOther)
}

// sessionDoc tells the page what it may do.
type sessionDoc struct {
	Name         string `json:"name"`
	ReadOnly     bool   `json:"read_only"`
	CSRF         string `json:"csrf"`
	RefreshMS    int64  `json:"refresh_ms"`
	StaleAfterMS int64  `json:"stale_after_ms"`
	DeadLetters  bool   `json:"dead_letters"`
	Tail         bool   `json:"tail"`
}

func (h *handler) session(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.sessionDoc(w, r))
}

// sessionDoc describes the session, setting the CSRF cookie when r has none.
func (h *handler) sessionDoc(w http.ResponseWriter, r *http.Request) sessionDoc {
	return sessionDoc{
		Name: h.o.Name, ReadOnly: h.o.ReadOnly, CSRF: h.guard.csrfToken(w, r),
		RefreshMS: h.o.Refresh.Milliseconds(), StaleAfterMS: h.o.StaleAfter.Milliseconds(),
		DeadLetters: h.o.DeadLetters != nil, Tail: h.o.Tailer != nil,
	}
}

func (h *handler) overviewJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.poll.get(r.Context()))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
