package schema

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/invopop/jsonschema"
)

// Schema is the JSON Schema (draft 2020-12) of one payload type, with its
// version hash.
type Schema struct {
	// JSON is the schema document.
	JSON json.RawMessage
	// Hash is "sha256:" and the hex SHA-256 of the canonical form of JSON
	// (see Canonical): equal for schemas that accept the same payloads,
	// whatever their descriptions.
	Hash string
}

// reflected caches the schema of each Go type: reflection runs once per
// type and process (until AddGoComments adds descriptions).
var reflected sync.Map // reflect.Type → *Schema

// comments holds the Go doc comments that AddGoComments read, by
// "{import path}.{Type}" and "{import path}.{Type}.{Field}".
var comments struct {
	sync.RWMutex
	m map[string]string
}

// AddGoComments reads the Go source files under dir (the package whose
// import path is importPath, and its subdirectories) and uses their doc
// comments as the descriptions of the exported types and fields they
// document (a type's first sentence, a field's whole comment); a tag
// description wins over a comment.
// Doc comments live in source files, not in a compiled program: call it
// where the source is at hand — in a test or a go:generate step that
// exports the schemas (bus.ExportSchemas) — not in a deployed service.
// Descriptions never change a schema's hash.
//
//	schema.AddGoComments("github.com/acme/pricing/events", ".")
func AddGoComments(importPath, dir string) error {
	r := &jsonschema.Reflector{}
	if err := r.AddGoComments(importPath, dir); err != nil {
		return fmt.Errorf("schema: read Go comments under %s: %w", dir, err)
	}
	comments.Lock()
	if comments.m == nil {
		comments.m = map[string]string{}
	}
	for k, v := range r.CommentMap {
		comments.m[k] = v
	}
	comments.Unlock()
	reflected.Clear()
	return nil
}

// For returns the schema of payloads of type t, as the JSON codec encodes
// them:
//   - properties are named by the json tags (encoding/json's rules:
//     "-" skips a field, embedded structs are flattened);
//   - a field is required unless its json tag says omitempty or omitzero
//     or its type is a pointer (a `jsonschema:"required"` tag makes any
//     field required);
//   - pointer, slice and map fields also accept null, which is how
//     encoding/json writes a nil one;
//   - other properties are allowed (additionalProperties is not false),
//     so that adding a field never breaks a listener;
//   - a type with its own MarshalJSON accepts any value, one with its own
//     MarshalText a string, unless it has a JSONSchema method;
//   - descriptions come from `jsonschema:"description=..."` or
//     `jsonschema_description:"..."` tags, a JSONSchemaExtend method, and
//     Go doc comments once AddGoComments has read them; the other
//     keywords of github.com/invopop/jsonschema tags (enum, minimum,
//     pattern, format …) apply too.
//
// For never fails: a type the library cannot describe (a channel, a
// function) gets the schema that accepts anything.
func For(t reflect.Type) *Schema {
	if s, ok := reflected.Load(t); ok {
		return s.(*Schema)
	}
	s := reflectType(t)
	reflected.Store(t, s)
	return s
}

func reflectType(t reflect.Type) *Schema {
	comments.RLock()
	cm := make(map[string]string, len(comments.m))
	for k, v := range comments.m {
		cm[k] = v
	}
	comments.RUnlock()
	r := &jsonschema.Reflector{
		Anonymous:                 true,
		ExpandedStruct:            true,
		AllowAdditionalProperties: true,
		CommentMap:                cm,
		Namer:                     defName,
		Mapper:                    opaque,
	}
	var root *jsonschema.Schema
	func() {
		defer func() {
			if recover() != nil {
				root = nil
			}
		}()
		root = r.ReflectFromType(t)
	}()
	var raw []byte
	if root != nil {
		f := fixer{defs: root.Definitions, done: map[string]bool{}}
		f.fix(t, root)
		if isNullable(t) && !allowsNull(root) {
			nullable := *root
			root = &jsonschema.Schema{
				Version: nullable.Version, Definitions: nullable.Definitions,
				AnyOf: []*jsonschema.Schema{&nullable, {Type: "null"}},
			}
			nullable.Version, nullable.Definitions = "", nil
		}
		raw, _ = json.Marshal(root)
		// The root type's own definition moved into the root
		// (ExpandedStruct): a recursive type refers to it as "#".
		base := t
		for base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		if name := defName(base); name != "" && root.Definitions[name] == nil {
			raw = bytes.ReplaceAll(raw, []byte(`"$ref":"#/$defs/`+name+`"`), []byte(`"$ref":"#"`))
		}
	}
	if len(raw) == 0 {
		raw = []byte(`{"$schema":"https://json-schema.org/draft/2020-12/schema"}`)
	}
	return &Schema{JSON: raw, Hash: Hash(raw)}
}

var (
	pkgPath  = regexp.MustCompile(`[A-Za-z0-9_.~-]*/`)
	nameChar = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
)

// defName names the definition of a type in "$defs": its Go name, with
// the package paths of type arguments cut to the package name and the
// characters a JSON pointer or URL would need escaped replaced, so that a
// generic type (Box[github.com/acme/x.Item]) is "Box_x.Item_".
func defName(t reflect.Type) string {
	n := t.Name()
	if n == "" {
		return ""
	}
	return nameChar.ReplaceAllString(pkgPath.ReplaceAllString(n, ""), "_")
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	ownSchema     = reflect.TypeFor[interface{ JSONSchema() *jsonschema.Schema }]()
	knownTypes    = map[reflect.Type]bool{
		reflect.TypeFor[time.Time]():       true,
		reflect.TypeFor[net.IP]():          true,
		reflect.TypeFor[json.RawMessage](): true,
	}
)

// opaque describes the types whose JSON is not what their fields say: a
// type with its own MarshalJSON may write anything (its schema accepts any
// value), a TextMarshaler writes a string. A JSONSchema method, and the
// types the library knows (time.Time, net.IP, json.RawMessage), win.
func opaque(t reflect.Type) *jsonschema.Schema {
	has := func(i reflect.Type) bool { return t.Implements(i) || reflect.PointerTo(t).Implements(i) }
	switch {
	case knownTypes[t] || has(ownSchema):
		return nil
	case has(jsonMarshaler):
		return &jsonschema.Schema{}
	case has(textMarshaler):
		return &jsonschema.Schema{Type: "string"}
	}
	return nil
}

// fixer applies the project's rules on what the library reflected: pointer
// fields optional, pointer, slice and map fields nullable.
type fixer struct {
	defs jsonschema.Definitions
	done map[string]bool
}

func (f *fixer) fix(t reflect.Type, s *jsonschema.Schema) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s == nil {
		return
	}
	if name, ok := strings.CutPrefix(s.Ref, "#/$defs/"); ok {
		if f.done[name] {
			return
		}
		f.done[name] = true
		s = f.defs[name]
		if s == nil {
			return
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		if s.Properties == nil {
			return
		}
		for _, fl := range jsonFields(t) {
			p, ok := s.Properties.Get(fl.name)
			if !ok || p == nil {
				continue
			}
			f.fix(fl.typ, p)
			if fl.typ.Kind() == reflect.Pointer && !fl.forceRequired {
				s.Required = without(s.Required, fl.name)
			}
			if isNullable(fl.typ) && !allowsNull(p) {
				s.Properties.Set(fl.name, &jsonschema.Schema{
					Description: p.Description,
					AnyOf:       []*jsonschema.Schema{p, {Type: "null"}},
				})
				p.Description = ""
			}
		}
	case reflect.Slice, reflect.Array:
		f.fix(t.Elem(), s.Items)
	case reflect.Map:
		f.fix(t.Elem(), s.AdditionalProperties)
		for _, p := range s.PatternProperties {
			f.fix(t.Elem(), p)
		}
	}
}

func isNullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice:
		return true
	}
	return false
}

func allowsNull(s *jsonschema.Schema) bool {
	if s.Type == "null" || s.Type == "" && s.Ref == "" && len(s.AnyOf) == 0 && len(s.OneOf) == 0 && s.Not == nil {
		return true // untyped: anything
	}
	for _, b := range append(append([]*jsonschema.Schema(nil), s.AnyOf...), s.OneOf...) {
		if b.Type == "null" {
			return true
		}
	}
	return false
}

func without(list []string, name string) []string {
	out := list[:0]
	for _, n := range list {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

// field is one JSON property of a struct type.
type field struct {
	name          string
	typ           reflect.Type
	forceRequired bool
}

// jsonFields lists the properties encoding/json writes for struct type t,
// by the library's rules of reading tags: embedded structs without a name
// are flattened, "-" skips, unexported fields are skipped.
func jsonFields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := strings.Split(sf.Tag.Get("json"), ",")
		if tag[0] == "-" && len(tag) == 1 {
			continue
		}
		stags := strings.Split(sf.Tag.Get("jsonschema"), ",")
		if len(stags) > 0 && stags[0] == "-" {
			continue
		}
		if sf.Anonymous && tag[0] == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				out = append(out, jsonFields(et)...)
				continue
			}
		}
		if !sf.Anonymous && !sf.IsExported() {
			continue
		}
		name := sf.Name
		if tag[0] != "" {
			name = tag[0]
		}
		req := false
		for _, st := range stags {
			if st == "required" {
				req = true
			}
		}
		out = append(out, field{name: name, typ: sf.Type, forceRequired: req})
	}
	return out
}
