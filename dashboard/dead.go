package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/busline/busline/transports"
)

// maxShownPayload is the most of a payload the page shows.
const maxShownPayload = 64 << 10

// deadView is a dead letter for the page.
type deadView struct {
	ID       string            `json:"id"`
	EventID  string            `json:"event_id"`
	Event    string            `json:"event"`
	Attempts int               `json:"attempts"`
	DeadAt   *time.Time        `json:"dead_at"`
	Reason   string            `json:"reason"`
	Metadata map[string]string `json:"metadata"`
	// Payload is the payload for people: indented when it is JSON.
	Payload     string `json:"payload"`
	PayloadJSON bool   `json:"payload_json"`
	Truncated   bool   `json:"truncated,omitempty"`
}

func toDeadView(d transports.DeadLetter) deadView {
	v := deadView{ID: d.ID, Event: d.Topic, Attempts: d.Attempts, DeadAt: timePtr(d.DeadAt), Reason: d.Reason, Metadata: map[string]string{}}
	if d.Message != nil {
		v.EventID = d.Message.UUID
		for k, val := range d.Message.Metadata {
			v.Metadata[k] = val
		}
		v.Payload, v.PayloadJSON, v.Truncated = pretty(d.Message.Payload)
	}
	return v
}

// pretty renders a payload for people: indented JSON when it is JSON,
// else its text with invalid UTF-8 replaced; at most maxShownPayload bytes.
func pretty(p []byte) (text string, isJSON, truncated bool) {
	if json.Valid(p) {
		var b bytes.Buffer
		if json.Indent(&b, p, "", "  ") == nil {
			p, isJSON = b.Bytes(), true
		}
	}
	if len(p) > maxShownPayload {
		p, truncated = p[:maxShownPayload], true
	}
	return string(bytes.ToValidUTF8(p, []byte(string(utf8.RuneError)))), isJSON, truncated
}

func (h *handler) deadStore(w http.ResponseWriter) (transports.DeadLetterStore, bool) {
	if h.o.DeadLetters == nil {
		writeError(w, http.StatusNotImplemented, "this transport keeps no dead letters the dashboard can read")
		return nil, false
	}
	return h.o.DeadLetters, true
}

// maxGroupLen bounds the group names the dead-letter endpoints accept.
const maxGroupLen = 512

// checkGroup answers a missing or overlong group name with 400.
func checkGroup(w http.ResponseWriter, g string) bool {
	switch {
	case g == "":
		writeError(w, http.StatusBadRequest, "name the group: ?group=NAME, or \"group\" in the body")
	case len(g) > maxGroupLen:
		writeError(w, http.StatusBadRequest, "the group name is "+strconv.Itoa(len(g))+" bytes; at most "+strconv.Itoa(maxGroupLen)+" are accepted")
	default:
		return true
	}
	return false
}

// knownGroup tells, when a group has no dead letters, a group the broker
// does not know (a typo: 404) from an empty one (transports.CheckGroupKnown
// on the dashboard's transport).
func (h *handler) knownGroup(ctx context.Context, group string) error {
	return transports.CheckGroupKnown(ctx, h.o.Transport, group)
}

// storeStatus is the status of a dead-letter store's error: 404 for a
// group or dead letter that does not exist (a name no group can have, an
// ID that names no dead letter), 400 for a name the broker cannot carry,
// 502 for the broker's failures.
func storeStatus(err error) int {
	switch {
	case errors.Is(err, transports.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, transports.ErrInvalidConfig):
		return http.StatusBadRequest
	case errors.Is(err, transports.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

func (h *handler) deadList(w http.ResponseWriter, r *http.Request) {
	ds, ok := h.deadStore(w)
	if !ok {
		return
	}
	group := r.URL.Query().Get("group")
	if !checkGroup(w, group) {
		return
	}
	limit := h.o.DeadLimit
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n < limit {
		limit = n
	}
	list, err := ds.DeadLetters(r.Context(), group, limit)
	if err == nil && len(list) == 0 {
		err = h.knownGroup(r.Context(), group)
	}
	if err != nil {
		writeError(w, storeStatus(err), "list dead letters of "+group+": "+err.Error())
		return
	}
	out := make([]deadView, 0, len(list))
	for _, d := range list {
		out = append(out, toDeadView(d))
	}
	writeJSON(w, http.StatusOK, struct {
		Group       string     `json:"group"`
		Limit       int        `json:"limit"`
		DeadLetters []deadView `json:"dead_letters"`
	}{group, limit, out})
}

// actionRequest is the body of replay and purge.
type actionRequest struct {
	Group string `json:"group"`
	ID    string `json:"id"`
	All   bool   `json:"all"`
}

// readAction returns the dead-letter store and the request of an action,
// or answers the error.
func (h *handler) readAction(w http.ResponseWriter, r *http.Request) (transports.DeadLetterStore, actionRequest, bool) {
	var req actionRequest
	ds, ok := h.deadStore(w)
	if !ok {
		return nil, req, false
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be JSON: "+err.Error())
		return nil, req, false
	}
	if !checkGroup(w, req.Group) {
		return nil, req, false
	}
	return ds, req, true
}

// deadReplay replays one dead letter ({"group","id"}) or all of a group
// ({"group","all":true}).
func (h *handler) deadReplay(w http.ResponseWriter, r *http.Request) {
	ds, req, ok := h.readAction(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	ids := []string{req.ID}
	switch {
	case req.All && req.ID != "":
		writeError(w, http.StatusBadRequest, "replay either one id or all, not both")
		return
	case req.All:
		list, err := ds.DeadLetters(ctx, req.Group, 0)
		if err == nil && len(list) == 0 {
			err = h.knownGroup(ctx, req.Group)
		}
		if err != nil {
			writeError(w, storeStatus(err), "list dead letters of "+req.Group+": "+err.Error())
			return
		}
		ids = ids[:0]
		for _, d := range list {
			ids = append(ids, d.ID)
		}
	case req.ID == "":
		writeError(w, http.StatusBadRequest, "name the dead letter (id) or ask for all")
		return
	}
	for i, id := range ids {
		if err := ds.ReplayDeadLetter(ctx, req.Group, id); err != nil {
			h.o.Logger.Warn("dashboard: replay failed", slog.String("group", req.Group), slog.String("id", id), slog.Any("error", err))
			writeError(w, storeStatus(err), "replayed "+strconv.Itoa(i)+" of "+strconv.Itoa(len(ids))+"; "+id+": "+err.Error())
			return
		}
	}
	h.o.Logger.Info("dashboard: dead letters replayed", slog.String("group", req.Group), slog.Int("count", len(ids)))
	writeJSON(w, http.StatusOK, map[string]int{"replayed": len(ids)})
}

// deadPurge removes every dead letter of a group ({"group"}).
func (h *handler) deadPurge(w http.ResponseWriter, r *http.Request) {
	ds, req, ok := h.readAction(w, r)
	if !ok {
		return
	}
	n, err := ds.PurgeDeadLetters(r.Context(), req.Group)
	if err == nil && n == 0 {
		err = h.knownGroup(r.Context(), req.Group)
	}
	if err != nil {
		h.o.Logger.Warn("dashboard: purge failed", slog.String("group", req.Group), slog.Any("error", err))
		writeError(w, storeStatus(err), "purge dead letters of "+req.Group+": "+err.Error())
		return
	}
	h.o.Logger.Info("dashboard: dead letters purged", slog.String("group", req.Group), slog.Int("count", n))
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}
