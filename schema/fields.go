package schema

import (
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"
)

// field is one JSON property of a struct type, as encoding/json writes it.
type field struct {
	name  string
	typ   reflect.Type
	index []int // the path of struct fields to it
	sf    reflect.StructField
	// omit: encoding/json may leave the field out (omitzero, or
	// omitempty on a type it applies to).
	omit bool
	// quoted: the json tag says string.
	quoted        bool
	forceRequired bool
	// viaPointer: the field is promoted from an embedded pointer to a
	// struct, which encoding/json leaves out when the pointer is nil.
	viaPointer bool
	tagged     bool
	depth      int
}

// jsonFields lists the properties encoding/json writes for struct type t,
// by its rules: "-" skips a field ("-," names it "-"), unexported fields
// are skipped, the fields of embedded structs without a name in their tag
// are promoted, and of several fields with one name the shallowest wins,
// a tagged one among equals, and none when that leaves a tie. A field
// tagged `jsonschema:"-"` is left out too.
func jsonFields(t reflect.Type) []field {
	type level struct {
		typ    reflect.Type
		index  []int
		viaPtr bool
	}
	var all []field
	visited := map[reflect.Type]bool{}
	current := []level{{typ: t}}
	for depth := 0; len(current) > 0; depth++ {
		var next []level
		seen := map[reflect.Type]bool{}
		for _, l := range current {
			if visited[l.typ] {
				continue
			}
			seen[l.typ] = true
			for i := range l.typ.NumField() {
				sf := l.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				if st := strings.Split(sf.Tag.Get("jsonschema"), ","); st[0] == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				index := append(slices.Clip(l.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
					next = append(next, level{typ: ft, index: index, viaPtr: l.viaPtr || sf.Type.Kind() == reflect.Pointer})
					continue
				}
				fl := field{name: name, typ: sf.Type, index: index, sf: sf, viaPointer: l.viaPtr, tagged: name != "", depth: depth}
				if name == "" {
					fl.name = sf.Name
				}
				for _, o := range strings.Split(opts, ",") {
					switch o {
					case "omitempty":
						// It never leaves out a struct, nor an array
						// that has elements.
						fl.omit = fl.omit || !(ft.Kind() == reflect.Struct && sf.Type.Kind() != reflect.Pointer ||
							ft.Kind() == reflect.Array && ft.Len() > 0)
					case "omitzero":
						fl.omit = true
					case "string":
						fl.quoted = true
					}
				}
				for _, st := range strings.Split(sf.Tag.Get("jsonschema"), ",") {
					if st == "required" {
						fl.forceRequired = true
					}
				}
				all = append(all, fl)
			}
		}
		for typ := range seen {
			visited[typ] = true
		}
		current = next
	}
	byName := map[string][]field{}
	for _, fl := range all {
		byName[fl.name] = append(byName[fl.name], fl)
	}
	var out []field
	for _, fs := range byName {
		minDepth := fs[0].depth
		for _, fl := range fs {
			minDepth = min(minDepth, fl.depth)
		}
		var top, tagged []field
		for _, fl := range fs {
			if fl.depth == minDepth {
				top = append(top, fl)
				if fl.tagged {
					tagged = append(tagged, fl)
				}
			}
		}
		switch {
		case len(top) == 1:
			out = append(out, top[0])
		case len(tagged) == 1:
			out = append(out, tagged[0])
		}
	}
	slices.SortFunc(out, func(a, b field) int { return slices.Compare(a.index, b.index) })
	return out
}

// libraryFields lists, by property name, the path of the struct field
// whose schema invopop/jsonschema put there: it skips "-" and "-,",
// flattens embedded structs and fields tagged ",inline", and the last
// field of a name wins.
func libraryFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || depth > 32 {
			return
		}
		for i := range t.NumField() {
			sf := t.Field(i)
			tags := strings.Split(sf.Tag.Get("json"), ",")
			if tags[0] == "-" || strings.Split(sf.Tag.Get("jsonschema"), ",")[0] == "-" {
				continue
			}
			idx := append(slices.Clip(index), i)
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if (sf.Anonymous && tags[0] == "" && et.Kind() == reflect.Struct) || slices.Contains(tags[1:], "inline") {
				walk(sf.Type, idx, depth+1)
				continue
			}
			name := sf.Name
			if tags[0] != "" {
				name = tags[0]
			}
			if !sf.Anonymous && sf.PkgPath != "" {
				continue
			}
			out[name] = idx
		}
	}
	walk(t, nil, 0)
	return out
}

// alignFields makes the properties of struct type t's schema those
// encoding/json writes, where the library differs: a field shadowed by a
// shallower one of the same name, two fields of one name at the same
// depth (encoding/json writes neither), a field tagged ",inline" (an
// ordinary field for encoding/json), a field named "-" (tag "-,").
func (f *fixer) alignFields(t reflect.Type, s *jsonschema.Schema) {
	fields := jsonFields(t)
	lib := libraryFields(t)
	changed := false
	want := map[string]bool{}
	for _, fl := range fields {
		want[fl.name] = true
		if slices.Equal(lib[fl.name], fl.index) {
			continue
		}
		if p := f.reflectField(fl); p != nil {
			s.Properties.Set(fl.name, p)
			changed = true
		}
	}
	var extra []string
	for pair := s.Properties.Oldest(); pair != nil; pair = pair.Next() {
		if !want[pair.Key] {
			extra = append(extra, pair.Key)
		}
	}
	for _, name := range extra {
		s.Properties.Delete(name)
		changed = true
	}
	if !changed {
		return
	}
	s.Required = nil
	for _, fl := range fields {
		if _, ok := s.Properties.Get(fl.name); ok && (!fl.omit || fl.forceRequired) {
			s.Required = append(s.Required, fl.name)
		}
	}
}

var jsonTag = regexp.MustCompile(`(^|\s)json:"(?:[^"\\]|\\.)*"`)

// reflectField makes the schema of one field as the library would for a
// field of that name: it reflects a struct of that field alone, named by
// its json tag, and adds the definitions it needs.
func (f *fixer) reflectField(fl field) (p *jsonschema.Schema) {
	defer func() {
		if recover() != nil {
			p = nil
		}
	}()
	_, opts, _ := strings.Cut(fl.sf.Tag.Get("json"), ",")
	var keep []string
	for _, o := range strings.Split(opts, ",") {
		if o != "inline" && o != "" {
			keep = append(keep, o)
		}
	}
	const placeholder = "Field"
	tag := strings.TrimSpace(jsonTag.ReplaceAllString(string(fl.sf.Tag), " ")) + ` json:"` + strings.Join(append([]string{placeholder}, keep...), ",") + `"`
	st := reflect.StructOf([]reflect.StructField{{Name: placeholder, Type: fl.typ, Tag: reflect.StructTag(strings.TrimSpace(tag))}})
	sub := f.reflector().ReflectFromType(st)
	if sub == nil || sub.Properties == nil {
		return nil
	}
	p, _ = sub.Properties.Get(placeholder)
	for name, d := range sub.Definitions {
		if f.root.Definitions == nil {
			f.root.Definitions = jsonschema.Definitions{}
		}
		if f.root.Definitions[name] == nil {
			f.root.Definitions[name] = d
		}
	}
	return p
}

// embedsItself reports whether a struct type reachable from t embeds
// itself, directly or through other embedded structs (or fields tagged
// ",inline"). The library flattens embedded structs without end on such
// a type, and the process dies of a stack overflow, which no recover
// catches.
func embedsItself(t reflect.Type) bool {
	seen := map[reflect.Type]bool{}
	var reachable func(t reflect.Type) bool
	var embeds func(t reflect.Type, path map[reflect.Type]bool) bool
	embeds = func(t reflect.Type, path map[reflect.Type]bool) bool {
		if path[t] {
			return true
		}
		path[t] = true
		defer delete(path, t)
		for i := range t.NumField() {
			sf := t.Field(i)
			tags := strings.Split(sf.Tag.Get("json"), ",")
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct && ((sf.Anonymous && tags[0] == "") || slices.Contains(tags[1:], "inline")) {
				if embeds(et, path) {
					return true
				}
			}
		}
		return false
	}
	reachable = func(t reflect.Type) bool {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			if t.Kind() == reflect.Map && reachable(t.Key()) {
				return true
			}
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return false
		}
		seen[t] = true
		if embeds(t, map[reflect.Type]bool{}) {
			return true
		}
		for i := range t.NumField() {
			if reachable(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return reachable(t)
}
