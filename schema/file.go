package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// FileVersion is the version of the schema file format.
const FileVersion = 1

// File is the schema file of one service: the schemas of the events it
// fires and listens to, as its code defines them. bus.ExportSchemas writes
// it (from a test in the service's CI), `busline schema export` writes it
// from what a service published, `busline schema check` reads it.
type File struct {
	// Version is FileVersion.
	Version int `json:"version"`
	// Service is the service the schemas belong to.
	Service string `json:"service"`
	// Schemas are the service's records, sorted by event and role.
	Schemas []Record `json:"schemas"`
}

// ErrInvalidFile is returned for a schema file that cannot be used.
var ErrInvalidFile = errors.New("schema: invalid schema file")

// WriteFile writes f as indented JSON, records sorted and hashed.
func WriteFile(w io.Writer, f File) error {
	f.Version = FileVersion
	recs := make([]Record, len(f.Schemas))
	for i, r := range f.Schemas {
		if r.Service == "" {
			r.Service = f.Service
		}
		r.Hash = Hash(r.Schema)
		recs[i] = r
	}
	Sort(recs)
	f.Schemas = recs
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(f)
}

// ReadFile reads a schema file written by WriteFile. Hashes are computed
// again from the schemas, so an edited file is judged by what it says.
func ReadFile(r io.Reader) (File, error) {
	var f File
	dec := json.NewDecoder(r)
	if err := dec.Decode(&f); err != nil {
		return File{}, fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	if f.Version != FileVersion {
		return File{}, fmt.Errorf("%w: version %d (want %d)", ErrInvalidFile, f.Version, FileVersion)
	}
	for i := range f.Schemas {
		rec := &f.Schemas[i]
		if rec.Service == "" {
			rec.Service = f.Service
		}
		if rec.Event == "" || rec.Service == "" || (rec.Role != RoleFires && rec.Role != RoleListens) || !json.Valid(rec.Schema) {
			return File{}, fmt.Errorf("%w: schema %d needs an event, a service, a role (fires or listens) and a JSON schema", ErrInvalidFile, i)
		}
		rec.Hash = Hash(rec.Schema)
	}
	return f, nil
}

// Finding is one breaking change that Check found: what breaks between a
// schema in the file and a schema another service published.
type Finding struct {
	Problem
	// Event is the event.
	Event string `json:"event"`
	// Firer and Listener are the services on each side; one of them is
	// the file's service.
	Firer    string `json:"firer"`
	Listener string `json:"listener"`
	// Role is the file's side: RoleFires when the file's service fires
	// the event, RoleListens when it listens.
	Role Role `json:"role"`
}

// Report is the result of Check.
type Report struct {
	// Service is the file's service.
	Service string `json:"service"`
	// Compared counts the (firer, listener) pairs compared.
	Compared int `json:"compared"`
	// Unchanged lists "{event}/{role}" whose schema in the file has the
	// hash the service published last.
	Unchanged []string `json:"unchanged"`
	// Changed lists "{event}/{role}" whose schema differs from the one the
	// service published last (or that it never published).
	Changed []string `json:"changed"`
	// Breaking are the breaking changes; Check passes when it is empty.
	Breaking []Finding `json:"breaking"`
}

// OK reports whether the check found no breaking change.
func (r Report) OK() bool { return len(r.Breaking) == 0 }

// Check compares the schemas of a file with the records on the broker: a
// schema the file's service fires must satisfy every other service that
// listens to the event (Compare(file, listener)), and every other service
// that fires an event the file's service listens to must satisfy the
// file's schema (Compare(firer, file)). Records of the file's own service
// are the versions the file replaces: they decide Changed and Unchanged,
// not Breaking.
func Check(f File, published []Record) Report {
	rep := Report{Service: f.Service, Unchanged: []string{}, Changed: []string{}, Breaking: []Finding{}}
	own := map[string]string{}
	for _, p := range published {
		if p.Service == f.Service {
			own[p.Event+"/"+string(p.Role)] = p.Hash
		}
	}
	for _, rec := range f.Schemas {
		id := rec.Event + "/" + string(rec.Role)
		if h, ok := own[id]; ok && h == Hash(rec.Schema) {
			rep.Unchanged = append(rep.Unchanged, id)
		} else {
			rep.Changed = append(rep.Changed, id)
		}
		for _, p := range published {
			if p.Event != rec.Event || p.Service == rec.Service || p.Role == rec.Role {
				continue
			}
			var firer, listener Record
			if rec.Role == RoleFires {
				firer, listener = rec, p
			} else {
				firer, listener = p, rec
			}
			rep.Compared++
			for _, pr := range Compare(firer.Schema, listener.Schema) {
				rep.Breaking = append(rep.Breaking, Finding{
					Problem: pr, Event: rec.Event, Firer: firer.Service, Listener: listener.Service, Role: rec.Role,
				})
			}
		}
	}
	sort.Strings(rep.Unchanged)
	sort.Strings(rep.Changed)
	return rep
}

// Conflicts compares the records of one event across services: each
// (firer, listener) pair with breaking problems. A bus logs them at
// Start; `busline schema list` shows them.
func Conflicts(published []Record) []Finding {
	var out []Finding
	for _, f := range published {
		if f.Role != RoleFires {
			continue
		}
		for _, l := range published {
			if l.Role != RoleListens || l.Event != f.Event || l.Hash == f.Hash {
				continue
			}
			for _, pr := range Compare(f.Schema, l.Schema) {
				out = append(out, Finding{Problem: pr, Event: f.Event, Firer: f.Service, Listener: l.Service, Role: RoleFires})
			}
		}
	}
	return out
}
