package schema

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Kinds of breaking change between the schema a firer sends and the schema
// a listener requires.
const (
	// KindMissingField: the listener requires a field the firer's schema
	// does not have — removed or renamed by the firer, or newly required
	// by the listener.
	KindMissingField = "missing_field"
	// KindOptionalField: the listener requires a field the firer may
	// leave out (optional, omitempty or a pointer in the firer's type).
	KindOptionalField = "optional_field"
	// KindTypeChanged: the firer may send a value of a type the listener
	// does not accept.
	KindTypeChanged = "type_changed"
)

// Problem is one breaking difference between two schemas.
type Problem struct {
	// Kind is KindMissingField, KindOptionalField or KindTypeChanged.
	Kind string `json:"kind"`
	// Pointer is the JSON pointer of the field in the payload ("" for the
	// payload itself).
	Pointer string `json:"pointer"`
	// Message says what breaks, in words.
	Message string `json:"message"`
}

// Compare reports what breaks when payloads valid against sent (the
// firer's schema) reach a listener that requires required (the listener's
// schema). The rules, applied at every level of nesting:
//   - every field the listener requires must be a field the firer
//     requires too (a firer's optional field may be missing);
//   - every type the firer may send at a place must be a type the
//     listener accepts there (an integer is a number);
//   - so must every item of a list and every value of a map (at
//     "/field/*");
//   - fields the listener does not know are fine (ignored on decode),
//     so adding a field or making one optional for the listener never
//     breaks.
//
// Constraints other than types and required fields (enum, minimum,
// pattern, format …) are not compared.
func Compare(sent, required []byte) []Problem {
	var s, r any
	if json.Unmarshal(sent, &s) != nil || json.Unmarshal(required, &r) != nil {
		return []Problem{{Kind: KindTypeChanged, Message: "a schema is not JSON"}}
	}
	c := comparer{sentRoot: s, reqRoot: r, seen: map[[2]string]bool{}}
	// The roots are "#" to a recursive type: a field that refers back to
	// the root is a pair already being compared.
	c.seen[[2]string{"#", "#"}] = true
	c.compare(s, r, "", 0)
	return c.out
}

type comparer struct {
	sentRoot, reqRoot any
	seen              map[[2]string]bool
	out               []Problem
}

const maxDepth = 64

func (c *comparer) add(kind, ptr, format string, args ...any) {
	c.out = append(c.out, Problem{Kind: kind, Pointer: ptr, Message: fmt.Sprintf(format, args...)})
}

func (c *comparer) compare(sent, req any, ptr string, depth int) {
	if depth > maxDepth {
		return
	}
	// A pair of definitions is compared once: a recursive type (a field
	// that is a pointer to its own type, nullable or not) is not compared
	// again at every level of nesting, which would report one change once
	// per level. The types at the place itself are still compared.
	descend := true
	sentRef, reqRef := refsOf(sent), refsOf(req)
	if sentRef != "" || reqRef != "" {
		key := [2]string{sentRef + "@" + ptr, reqRef}
		if sentRef != "" && reqRef != "" {
			key = [2]string{sentRef, reqRef} // the same pair of definitions: compared once
		}
		descend = !c.seen[key]
		c.seen[key] = true
	}
	sv := view(c.sentRoot, sent, 0)
	rv := view(c.reqRoot, req, 0)
	if rv.any {
		return // the listener accepts anything here
	}
	where := "the payload"
	if ptr != "" {
		where = fmt.Sprintf("field %s", ptr)
	}
	if sv.any {
		c.add(KindTypeChanged, ptr, "%s: the firer may send any value, the listener accepts only %s", where, strings.Join(sortedKeys(rv.types), " or "))
		return
	}
	var bad []string
	for t := range sv.types {
		if !rv.types[t] && !(t == "integer" && rv.types["number"]) {
			bad = append(bad, t)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		c.add(KindTypeChanged, ptr, "%s changed type: the firer sends %s, the listener accepts %s",
			where, strings.Join(bad, " or "), strings.Join(sortedKeys(rv.types), " or "))
	}
	if !descend {
		return
	}
	if sv.types["object"] && rv.types["object"] {
		for _, name := range sortedKeys(rv.required) {
			p := ptr + "/" + escapeToken(name)
			switch {
			case sv.props[name] == nil:
				c.add(KindMissingField, p, "field %s is required by the listener and missing from the firer's schema (removed, renamed, or newly required)", p)
			case !sv.required[name]:
				c.add(KindOptionalField, p, "field %s is required by the listener and optional for the firer (made optional, or newly required)", p)
			}
		}
		for _, name := range sortedKeys(rv.props) {
			if sp := sv.props[name]; sp != nil {
				c.compare(sp, rv.props[name], ptr+"/"+escapeToken(name), depth+1)
			}
		}
	}
	if sv.types["object"] && rv.types["object"] && rv.values != nil {
		// A map: each value the firer may send must suit the listener's
		// values. A firer's object that says nothing of its values may
		// send any.
		switch {
		case sv.values != nil:
			c.compare(sv.values, rv.values, ptr+"/*", depth+1)
		case len(sv.props) == 0:
			c.compare(true, rv.values, ptr+"/*", depth+1)
		}
		for _, name := range sortedKeys(sv.props) {
			if rv.props[name] == nil {
				c.compare(sv.props[name], rv.values, ptr+"/"+escapeToken(name), depth+1)
			}
		}
	}
	if sv.types["array"] && rv.types["array"] && sv.items != nil && rv.items != nil {
		c.compare(sv.items, rv.items, ptr+"/*", depth+1)
	}
}

// shape is what a schema node says about types, fields and items, with
// references followed and anyOf/oneOf/allOf branches merged.
type shape struct {
	any      bool
	types    map[string]bool
	props    map[string]any
	required map[string]bool
	items    any
	// values is the schema of a map's values (additionalProperties, or
	// the one patternProperties of a map with integer keys); nil when
	// the node does not constrain them.
	values any
}

func view(root, node any, depth int) shape {
	sh := shape{types: map[string]bool{}, props: map[string]any{}, required: map[string]bool{}}
	node = resolve(root, node)
	switch n := node.(type) {
	case bool:
		sh.any = n
		return sh
	case map[string]any:
		typed := false
		switch t := n["type"].(type) {
		case string:
			sh.types[t], typed = true, true
		case []any:
			for _, e := range t {
				if s, ok := e.(string); ok {
					sh.types[s], typed = true, true
				}
			}
		}
		if ps, ok := n["properties"].(map[string]any); ok {
			for k, v := range ps {
				sh.props[k] = v
			}
		}
		if rs, ok := n["required"].([]any); ok {
			for _, e := range rs {
				if s, ok := e.(string); ok {
					sh.required[s] = true
				}
			}
		}
		if it, ok := n["items"]; ok {
			sh.items = it
		}
		if pp, ok := n["patternProperties"].(map[string]any); ok && len(pp) == 1 {
			for _, v := range pp {
				sh.values = v
			}
		} else if ap, ok := n["additionalProperties"]; ok && ap != true {
			sh.values = ap
		}
		branches := false
		if depth < maxDepth {
			for _, kw := range []string{"anyOf", "oneOf", "allOf"} {
				bs, _ := n[kw].([]any)
				for _, b := range bs {
					branches = true
					bv := view(root, b, depth+1)
					if bv.any {
						sh.any = true
					}
					for t := range bv.types {
						if !typed || kw == "allOf" {
							sh.types[t] = true
						}
					}
					for k, v := range bv.props {
						if sh.props[k] == nil {
							sh.props[k] = v
						}
					}
					for k := range bv.required {
						if kw == "allOf" || len(bs) == 1 || bv.types["object"] {
							sh.required[k] = true
						}
					}
					if sh.items == nil {
						sh.items = bv.items
					}
					if sh.values == nil {
						sh.values = bv.values
					}
				}
			}
		}
		if !typed && !branches && len(sh.props) == 0 && n["const"] == nil && n["enum"] == nil {
			sh.any = true
		}
		if !typed && len(sh.props) > 0 {
			sh.types["object"] = true
		}
	}
	if sh.any {
		sh.types = map[string]bool{}
	}
	return sh
}

// refOf returns the local reference of a node, "" when it has none.
func refOf(node any) string {
	if m, ok := node.(map[string]any); ok {
		if r, ok := m["$ref"].(string); ok {
			return r
		}
	}
	return ""
}

// refsOf returns the local references of a node and of its direct anyOf,
// oneOf and allOf branches (a nullable field is an anyOf of a reference
// and null), joined by "|"; "" when it has none.
func refsOf(node any) string {
	if r := refOf(node); r != "" {
		return r
	}
	m, ok := node.(map[string]any)
	if !ok {
		return ""
	}
	var refs []string
	for _, kw := range []string{"anyOf", "oneOf", "allOf"} {
		bs, _ := m[kw].([]any)
		for _, b := range bs {
			if r := refOf(b); r != "" {
				refs = append(refs, r)
			}
		}
	}
	return strings.Join(refs, "|")
}

// resolve follows local references ("#", "#/$defs/Name") within root.
func resolve(root, node any) any {
	for range maxDepth {
		ref := refOf(node)
		if ref == "" {
			return node
		}
		target := lookup(root, ref)
		if target == nil {
			return true // an outside reference: not checked
		}
		node = target
	}
	return node
}

func lookup(root any, ref string) any {
	if ref == "#" {
		return root
	}
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	cur := root
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

func escapeToken(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
