package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// sse writes server-sent events. Its methods may be called from several
// goroutines.
type sse struct {
	mu sync.Mutex
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startSSE answers r with an event stream.
func startSSE(w http.ResponseWriter, r *http.Request) *sse {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	// A stream outlives any write deadline the server has.
	_ = s.rc.SetWriteDeadline(time.Time{})
	_ = s.rc.Flush()
	return s
}

// send writes one event of the given name with v as JSON data.
func (s *sse) send(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// ping writes a comment, which keeps proxies from closing an idle stream.
func (s *sse) ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := fmt.Fprint(s.w, ": ping\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

// stream sends an overview at once and then every Options.Refresh, until
// the viewer leaves.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	s := startSSE(w, r)
	t := time.NewTicker(h.o.Refresh)
	defer t.Stop()
	for {
		if err := s.send("overview", h.poll.get(r.Context())); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
