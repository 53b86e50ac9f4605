package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
)

// annotations are the keywords that describe a schema without changing
// which payloads it accepts; Canonical drops them.
var annotations = map[string]bool{
	"$id": true, "$comment": true, "$anchor": true, "title": true, "description": true,
	"examples": true, "default": true, "deprecated": true, "readOnly": true, "writeOnly": true,
}

// Canonical returns the canonical form of a schema document: its
// annotations (description, title, $comment, examples, default, $id …)
// removed, object keys sorted, no insignificant space. Two schemas with the
// same canonical form accept the same payloads. A document that is not
// JSON is returned compacted as far as possible, unchanged otherwise.
func Canonical(doc []byte) []byte {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return doc
	}
	out, err := json.Marshal(strip(v, false))
	if err != nil {
		return doc
	}
	return out
}

// strip removes annotations from schema objects. Inside "properties",
// "$defs" and similar maps of names the keys are names, not keywords.
func strip(v any, names bool) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if !names && annotations[k] {
				continue
			}
			switch {
			case names:
				out[k] = strip(e, false)
			case k == "properties" || k == "$defs" || k == "definitions" || k == "patternProperties" || k == "dependentSchemas":
				out[k] = strip(e, true)
			case k == "required":
				out[k] = sortedStrings(e)
			case k == "enum" || k == "const":
				out[k] = e
			default:
				out[k] = strip(e, false)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = strip(e, false)
		}
		return out
	}
	return v
}

// Hash returns the version hash of a schema document: "sha256:" and the
// hex SHA-256 of its canonical form.
func Hash(doc []byte) string {
	sum := sha256.Sum256(Canonical(doc))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ShortHash is the hash for people: the first 12 hex digits.
func ShortHash(h string) string {
	const p = "sha256:"
	if len(h) > len(p)+12 && h[:len(p)] == p {
		return h[len(p) : len(p)+12]
	}
	return h
}

// sortedStrings sorts a list of names (the order of "required" means nothing).
func sortedStrings(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	names := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return v
		}
		names = append(names, s)
	}
	sort.Strings(names)
	return names
}
