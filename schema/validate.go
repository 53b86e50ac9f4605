package schema

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders the validator's messages in English.
var printer = message.NewPrinter(language.English)

// ErrInvalidPayload matches every error of a payload that does not match
// its schema (a *ValidationError).
var ErrInvalidPayload = errors.New("payload does not match the event's schema")

// ValidationError is a payload that does not match a schema.
type ValidationError struct {
	// Problems are the mismatches, each at a JSON pointer into the payload.
	Problems []Mismatch
}

// Mismatch is one place where a payload does not match its schema.
type Mismatch struct {
	// Pointer is the JSON pointer (RFC 6901) of the mismatching value in
	// the payload: "" is the whole payload, "/items/0/price" a field.
	Pointer string `json:"pointer"`
	// Message says what is wrong there.
	Message string `json:"message"`
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidPayload.Error())
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		ptr := p.Pointer
		if ptr == "" {
			ptr = "(the payload)"
		}
		fmt.Fprintf(&b, "at %s: %s", ptr, p.Message)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidPayload) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidPayload }

// Validator checks payloads against one compiled schema. It is safe for
// concurrent use.
type Validator struct {
	sch *jsonschema.Schema
}

// Compile compiles a schema document for validation. The "format" keyword
// is asserted (draft 2020-12 makes it an annotation unless asked): a
// date-time, email, uuid … that is not one is refused; unknown formats are
// ignored. So are contentEncoding and contentMediaType: a []byte field
// takes only base64.
func Compile(doc []byte) (*Validator, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("schema: not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	// Formats are constraints like the others: a time.Time field is a
	// "date-time", and a string that is not one does not decode into it.
	c.AssertFormat()
	// So are contentEncoding (a []byte field takes only base64) and
	// contentMediaType.
	c.AssertContent()
	const loc = "busline:event.schema.json"
	if err := c.AddResource(loc, v); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("schema: compile: %w", err)
	}
	return &Validator{sch: sch}, nil
}

// Validate checks one JSON payload. It returns a *ValidationError (which
// matches ErrInvalidPayload) when the payload does not match, naming each
// mismatch by its JSON pointer; another error when data is not JSON.
func (v *Validator) Validate(data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &ValidationError{Problems: []Mismatch{{Message: "not JSON: " + err.Error()}}}
	}
	err = v.sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("schema: validate: %w", err)
	}
	var out []Mismatch
	leaves(ve, &out)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pointer < out[j].Pointer })
	return &ValidationError{Problems: dedupe(out)}
}

// leaves collects the innermost errors: they name the exact place. Of the
// branches of an anyOf or oneOf that all failed, only those that got
// deepest into the payload are kept: for a nullable field, the mismatch
// inside the value, not "want null".
func leaves(e *jsonschema.ValidationError, out *[]Mismatch) {
	if len(e.Causes) == 0 {
		*out = append(*out, Mismatch{Pointer: pointer(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
		return
	}
	switch e.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		branches := make([][]Mismatch, len(e.Causes))
		deepest := -1
		for i, c := range e.Causes {
			leaves(c, &branches[i])
			deepest = max(deepest, depth(branches[i]))
		}
		// A branch whose type the value has tells more than one that
		// wants another type: for a nullable object with a missing
		// property, the missing property, not "want null".
		typed := false
		for i, b := range branches {
			if depth(b) == deepest && !wrongType(e.Causes[i]) {
				typed = true
			}
		}
		var kept []Mismatch
		for i, b := range branches {
			if depth(b) == deepest && !(typed && wrongType(e.Causes[i])) {
				kept = append(kept, b...)
			}
		}
		*out = append(*out, mergeTypes(e, kept)...)
		return
	}
	for _, c := range e.Causes {
		leaves(c, out)
	}
}

// wrongType reports whether e says only that the value is not of the
// type the schema wants.
func wrongType(e *jsonschema.ValidationError) bool { return typeLeaf(e) != nil }

// typeLeaf returns the type mismatch that e comes down to, through
// references; nil when e says more than that.
func typeLeaf(e *jsonschema.ValidationError) *kind.Type {
	for len(e.Causes) == 1 {
		e = e.Causes[0]
	}
	if t, ok := e.ErrorKind.(*kind.Type); ok && len(e.Causes) == 0 {
		return t
	}
	return nil
}

// depth is the length of the longest pointer among ms, in tokens.
func depth(ms []Mismatch) int {
	d := 0
	for _, m := range ms {
		d = max(d, strings.Count(m.Pointer, "/"))
	}
	return d
}

func dedupe(ms []Mismatch) []Mismatch {
	out := ms[:0]
	seen := map[Mismatch]bool{}
	for _, m := range ms {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// pointer renders a location as a JSON pointer (RFC 6901).
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// mergeTypes turns the branches of an anyOf that each failed on the type
// of the same value into one mismatch: "got number, want string or null".
func mergeTypes(e *jsonschema.ValidationError, ms []Mismatch) []Mismatch {
	if len(ms) < 2 {
		return ms
	}
	var got string
	var want []string
	for _, c := range e.Causes {
		t := typeLeaf(c)
		if t == nil || (got != "" && t.Got != got) {
			return ms
		}
		got = t.Got
		want = append(want, t.Want...)
	}
	return []Mismatch{{Pointer: ms[0].Pointer, Message: printer.Sprintf("got %s, want %s", got, strings.Join(want, " or "))}}
}
