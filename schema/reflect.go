package schema

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
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
//   - the properties are those encoding/json writes, named by the json
//     tags ("-" skips a field, embedded structs are flattened, the
//     shallowest of several fields of one name wins);
//   - a field is required unless its json tag says omitempty (on a type
//     it applies to: not a struct) or omitzero,
//     its type is a pointer, or it is promoted from an embedded pointer
//     (a `jsonschema:"required"` tag makes any field required);
//   - pointer, slice and map values (fields, items, map values, the
//     payload) also accept null, which is how encoding/json writes a nil
//     one;
//   - map keys are what encoding/json writes: a TextMarshaler key any
//     string, an integer key a decimal with its sign;
//   - an integer of a sized or unsigned type has the type's range;
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
// function, a struct that embeds itself) gets the schema that accepts
// anything.
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
	reflector := func() *jsonschema.Reflector {
		return &jsonschema.Reflector{
			Anonymous:                 true,
			ExpandedStruct:            true,
			AllowAdditionalProperties: true,
			CommentMap:                cm,
			Namer:                     defName,
			Mapper:                    opaque,
		}
	}
	var root *jsonschema.Schema
	func() {
		defer func() {
			if recover() != nil {
				root = nil
			}
		}()
		if embedsItself(t) {
			return // accepts anything
		}
		root = reflector().ReflectFromType(t)
		if root != nil {
			f := fixer{root: root, done: map[string]bool{}, reflector: reflector}
			f.fix(t, root)
		}
	}()
	var raw []byte
	if root != nil {
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
	urlType       = reflect.TypeFor[url.URL]()
	numberType    = reflect.TypeFor[json.Number]()
	knownTypes    = map[reflect.Type]bool{
		reflect.TypeFor[time.Time]():       true,
		reflect.TypeFor[json.RawMessage](): true,
	}
)

// opaque describes the types whose JSON is not what their fields say: a
// type with its own MarshalJSON may write anything (its schema accepts any
// value), a TextMarshaler (net.IP, netip.Addr …) writes a string (one
// with a pointer receiver may write its fields: any value), and
// url.URL, which has neither, an object; a json.Number is a number, a
// slice of any byte type a base64 string. A JSONSchema method, and the
// types the library knows (time.Time, json.RawMessage), win.
func opaque(t reflect.Type) *jsonschema.Schema {
	has := func(i reflect.Type) bool { return t.Implements(i) || reflect.PointerTo(t).Implements(i) }
	switch {
	case knownTypes[t] || has(ownSchema):
		return nil
	case t == urlType:
		// The library says a string of format uri, but url.URL has no
		// MarshalJSON or MarshalText: encoding/json writes its fields.
		return &jsonschema.Schema{Type: "object"}
	case has(jsonMarshaler):
		return &jsonschema.Schema{}
	case t.Implements(textMarshaler):
		return &jsonschema.Schema{Type: "string"}
	case has(textMarshaler):
		// A pointer receiver: encoding/json calls MarshalText only where
		// the value is addressable (behind a pointer, in a slice) and
		// writes the fields elsewhere.
		return &jsonschema.Schema{}
	case t == numberType:
		return &jsonschema.Schema{Type: "number"} // a string type written as a number
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 &&
		!reflect.PointerTo(t.Elem()).Implements(jsonMarshaler) && !reflect.PointerTo(t.Elem()).Implements(textMarshaler):
		// Any slice of bytes, not only []byte, is written in base64.
		return &jsonschema.Schema{Type: "string", ContentEncoding: "base64"}
	}
	return nil
}

// fixer applies the project's rules on what the library reflected: pointer
// fields optional, pointer, slice and map values nullable, map keys as
// encoding/json writes them.
type fixer struct {
	root      *jsonschema.Schema // its Definitions are the $defs
	done      map[string]bool
	reflector func() *jsonschema.Reflector
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
		s = f.root.Definitions[name]
		if s == nil {
			return
		}
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bounds(t, s)
	case reflect.Struct:
		if s.Properties == nil {
			return
		}
		f.alignFields(t, s)
		for _, fl := range jsonFields(t) {
			p, ok := s.Properties.Get(fl.name)
			if !ok || p == nil {
				continue
			}
			f.fix(fl.typ, p)
			quoted(fl, p)
			// A pointer field may be nil (null, or left out with
			// omitempty); the fields of a nil embedded pointer are left out.
			switch {
			case (fl.typ.Kind() == reflect.Pointer || fl.viaPointer) && !fl.forceRequired:
				s.Required = without(s.Required, fl.name)
			case !fl.omit && !slices.Contains(s.Required, fl.name):
				// omitempty never leaves out a struct (a time.Time …):
				// encoding/json always writes it.
				s.Required = append(s.Required, fl.name)
			}
			if q := orNull(fl.typ, p); q != p {
				q.Description, p.Description = p.Description, ""
				s.Properties.Set(fl.name, q)
			}
		}
	case reflect.Slice, reflect.Array:
		f.fix(t.Elem(), s.Items)
		if s.Items != nil {
			s.Items = orNull(t.Elem(), s.Items)
		}
	case reflect.Map:
		f.fix(t.Elem(), s.AdditionalProperties)
		for _, p := range s.PatternProperties {
			f.fix(t.Elem(), p)
		}
		f.fixKeys(t, s)
	}
}

// fixKeys makes the property names of a map's schema those encoding/json
// writes: a key of a string type as it is, one that implements
// encoding.TextMarshaler as its text (any string), an integer in decimal
// with its sign. Values that may be nil also accept null.
func (f *fixer) fixKeys(t reflect.Type, s *jsonschema.Schema) {
	k := t.Key()
	if s.AdditionalProperties != nil && s.AdditionalProperties != jsonschema.FalseSchema {
		s.AdditionalProperties = orNull(t.Elem(), s.AdditionalProperties)
	}
	var value *jsonschema.Schema
	for _, p := range s.PatternProperties {
		value = p
	}
	if value == nil {
		return
	}
	value = orNull(t.Elem(), value)
	switch {
	case k.Kind() != reflect.String && k.Implements(textMarshaler):
		s.PatternProperties, s.AdditionalProperties = nil, value
	case k.Kind() >= reflect.Int && k.Kind() <= reflect.Int64:
		s.PatternProperties = map[string]*jsonschema.Schema{"^-?[0-9]+$": value}
	}
}

// bounds gives an integer of a sized or unsigned Go type the range that
// decodes into it (an unsigned one at least its minimum 0): a number
// outside it is refused by validation, rather than by the listener's
// decoder. A bound of the jsonschema tag wins over the type's on its side.
func bounds(t reflect.Type, s *jsonschema.Schema) {
	if s.Type != "integer" {
		return
	}
	var lo, hi string
	switch t.Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32:
		lo, hi = strconv.FormatInt(-1<<(t.Bits()-1), 10), strconv.FormatInt(1<<(t.Bits()-1)-1, 10)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		lo, hi = "0", strconv.FormatUint(1<<t.Bits()-1, 10)
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		lo = "0"
	default:
		return // int, int64: a number beyond them is no mistake one makes by hand
	}
	if lo != "" && s.Minimum == "" && s.ExclusiveMinimum == "" {
		s.Minimum = json.Number(lo)
	}
	if hi != "" && s.Maximum == "" && s.ExclusiveMaximum == "" {
		s.Maximum = json.Number(hi)
	}
}

// quotedPatterns are the strings that encoding/json decodes into a field
// of each kind tagged ",string": the number, boolean or JSON string it
// quotes.
var quotedPatterns = map[reflect.Kind]string{
	reflect.Int:     `^-?(0|[1-9][0-9]*)$`,
	reflect.Uint:    `^(0|[1-9][0-9]*)$`,
	reflect.Float64: `^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`,
	reflect.Bool:    `^(true|false)$`,
	reflect.String:  `^"([^"\\]|\\.)*"$`,
}

// quoted gives the schema of a field tagged ",string" (a string, as the
// library says) the pattern of what it quotes.
func quoted(fl field, s *jsonschema.Schema) {
	k := fl.typ.Kind()
	if k == reflect.Pointer {
		k = fl.typ.Elem().Kind()
	}
	switch {
	case k >= reflect.Int && k <= reflect.Int64:
		k = reflect.Int
	case k >= reflect.Uint && k <= reflect.Uintptr:
		k = reflect.Uint
	case k == reflect.Float32:
		k = reflect.Float64
	}
	if p, ok := quotedPatterns[k]; ok && fl.quoted && s.Type == "string" && s.Pattern == "" {
		s.Pattern = p
	}
}

// orNull returns s, or s or null when t is a type whose nil value
// encoding/json writes as null (a pointer, a slice, a map).
func orNull(t reflect.Type, s *jsonschema.Schema) *jsonschema.Schema {
	if !isNullable(t) || allowsNull(s) {
		return s
	}
	return &jsonschema.Schema{AnyOf: []*jsonschema.Schema{s, {Type: "null"}}}
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
