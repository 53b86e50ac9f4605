// Package registry keeps openers by URL scheme for the packages whose
// drivers register themselves on import (transports, idempotency stores),
// the way database/sql keeps its drivers. It is the one kind of global
// state Busline has.
package registry

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Schemes maps URL schemes to openers of type O. It is safe for concurrent use.
type Schemes[O any] struct {
	what  string            // "transports", "idempotency": prefixes panics
	known map[string]string // scheme -> package that registers it
	mu    sync.RWMutex
	m     map[string]O
}

// New returns an empty registry. known names the package that registers
// each scheme Busline ships, so that an error can say what to import.
func New[O any](what string, known map[string]string) *Schemes[O] {
	return &Schemes[O]{what: what, known: known, m: map[string]O{}}
}

// Register adds an opener; it panics when scheme is registered twice, like
// database/sql.Register. Callers check the opener for nil themselves.
func (r *Schemes[O]) Register(scheme string, o O) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[scheme]; dup {
		panic(r.what + ": Register called twice for scheme " + scheme)
	}
	r.m[scheme] = o
}

// Lookup returns the opener of scheme.
func (r *Schemes[O]) Lookup(scheme string) (O, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	o, ok := r.m[scheme]
	return o, ok
}

// Names returns the registered schemes, sorted.
func (r *Schemes[O]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.m))
	for s := range r.m {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Unknown is the error for a URL whose scheme nobody registered: it wraps
// sentinel, names the package to import when the scheme is one Busline
// ships (followed by also, when set), and lists what is registered.
// redacted is the URL as it may be shown.
func (r *Schemes[O]) Unknown(sentinel error, scheme, redacted, also string) error {
	hint := "no package registers it"
	if pkg, ok := r.known[scheme]; ok {
		hint = fmt.Sprintf("import _ %q%s", pkg, also)
	}
	return fmt.Errorf("%w %q in %s: %s; registered: [%s]", sentinel, scheme, redacted, hint, strings.Join(r.Names(), " "))
}
