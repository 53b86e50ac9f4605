package bus

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/busline/busline/transports"
)

var (
	yamlUnknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type .*$`)
	yamlBadValue     = regexp.MustCompile("^line (\\d+): cannot unmarshal !!\\w+ `(.*)` into (.+)$")
	yamlBadShape     = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(seq|map) into (.*)$`)
)

// yamlError rewrites a YAML decoding error (nil: none) of the
// configuration file at path, followed by the problems in more, in the
// terms of the file: the key that is unknown (with the known
// key it most resembles) or the value that does not fit, and the line —
// never the Go types the file is decoded into.
func yamlError(path string, err error, more ...string) error {
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		// The parser quotes the value it choked on, which may hold a password.
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, path, transports.RedactText(err.Error()))
	}
	var errs []string
	if te != nil {
		errs = te.Errors
	}
	msgs := make([]string, 0, len(errs)+len(more))
	for _, e := range errs {
		if m := yamlUnknownField.FindStringSubmatch(e); m != nil {
			msg := fmt.Sprintf("line %s: unknown key %q", m[1], m[2])
			if s := closestKey(m[2]); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			msgs = append(msgs, msg)
			continue
		}
		if m := yamlBadValue.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: %q is not %s", m[1], redactValue(m[2]), yamlTargetWords(m[3])))
			continue
		}
		if m := yamlBadShape.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("line %s: %s where %s is expected", m[1], yamlShapeWords(m[2]), yamlTargetWords(m[3])))
			continue
		}
		msgs = append(msgs, transports.RedactText(e))
	}
	msgs = append(msgs, more...)
	return fmt.Errorf("%w: %s: %s (docs/configuration.md lists the keys)", ErrInvalidConfig, path, strings.Join(msgs, "; "))
}

// redactValue hides the secrets of a value that looks like a URL or a
// keyword/value connection string: either in the wrong place may carry a
// password.
func redactValue(v string) string {
	if strings.ContainsAny(v, "@=") || strings.Contains(v, "://") {
		return transports.RedactURL(v)
	}
	return v
}

func yamlShapeWords(tag string) string {
	if tag == "seq" {
		return "a list"
	}
	return "a mapping of keys"
}

// yamlTargetWords says what a key of the given Go type takes: a mapping of
// keys for a struct (a section such as listener or retry), else a value.
func yamlTargetWords(goType string) string {
	if strings.HasPrefix(goType, "struct") {
		return "a mapping of keys (key: value lines, indented)"
	}
	return yamlTypeWords(goType)
}

func yamlTypeWords(goType string) string {
	switch goType {
	case "time.Duration":
		return "a duration such as 30s or 2m"
	case "int", "int64":
		return "a whole number"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	}
	return "a value of the right kind"
}

// configKeys are every key of the configuration file, for suggestions.
var configKeys = func() []string {
	var keys []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" {
				keys = append(keys, name)
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[fileConfig]())
	return keys
}()

// closestKey returns the known key within two edits of k, if any.
func closestKey(k string) string {
	best, bestD := "", 3
	for _, c := range configKeys {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
