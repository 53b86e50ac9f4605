package transports

import (
	"regexp"
	"strings"
)

// A keyword/value connection string ("host=db password=pw dbname=shop",
// PostgreSQL's libpq form, or ODBC's "Server=db;Pwd=pw;") is sometimes
// given where a URL belongs. It is no URL: url.Parse cuts it at '?', '#'
// or '@', so its secrets are found on the raw text instead.

// keywordStartRE matches the start of a keyword/value string: a name and '='.
var keywordStartRE = regexp.MustCompile(`^\s*[A-Za-z_][A-Za-z0-9_.-]*\s*=`)

// nextKeywordRE matches where the next "name=" begins after a value: a
// space or ';', a name, '='.
var nextKeywordRE = regexp.MustCompile(`[\s;]+[A-Za-z_][A-Za-z0-9_.-]*\s*=`)

// isKeywordValue reports whether s is a keyword/value connection string
// rather than a URL: it starts with "name=" and holds no "://".
func isKeywordValue(s string) bool {
	return !strings.Contains(s, "://") && keywordStartRE.MatchString(s)
}

// keywordValue is one value of a keyword/value string: s[start:end].
type keywordValue struct {
	name       string
	start, end int
}

// scanKeywords returns the values of the keyword/value string s. A value
// quoted with ', " or {} runs to its closing quote ('\' escapes in quotes);
// an unquoted one runs to where the next "name=" begins, so that a
// secret holding '&', ';', '?', '#' or '@' is taken whole.
func scanKeywords(s string) []keywordValue {
	var out []keywordValue
	i := 0
	for i < len(s) {
		loc := keywordStartRE.FindStringIndex(s[i:])
		if loc == nil {
			break
		}
		head := s[i : i+loc[1]-1] // the name, spaces around it
		name := strings.TrimSpace(head)
		j := i + loc[1]
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
			j++
		}
		end := valueEnd(s, j)
		out = append(out, keywordValue{name: name, start: j, end: end})
		i = end
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == ';') {
			i++
		}
	}
	return out
}

// valueEnd returns where the value starting at s[j] ends.
func valueEnd(s string, j int) int {
	if j < len(s) {
		if closer := map[byte]byte{'\'': '\'', '"': '"', '{': '}'}[s[j]]; closer != 0 {
			for k := j + 1; k < len(s); k++ {
				switch s[k] {
				case '\\':
					if closer != '}' {
						k++
					}
				case closer:
					return k + 1
				}
			}
			return len(s) // unterminated: the rest is the value
		}
	}
	if loc := nextKeywordRE.FindStringIndex(s[j:]); loc != nil {
		return j + loc[0]
	}
	return len(s)
}

// redactKeywordValue masks the values of secret keywords (IsSecretParam)
// in the keyword/value string s, keeping the rest as typed.
func redactKeywordValue(s string) string {
	var b strings.Builder
	last := 0
	for _, v := range scanKeywords(s) {
		if !IsSecretParam(v.name) || v.start == v.end {
			continue
		}
		b.WriteString(s[last:v.start])
		b.WriteString(Mask)
		last = v.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// keywordSecrets returns the secret values of the keyword/value string s,
// as written and without their quotes.
func keywordSecrets(s string) []string {
	var out []string
	for _, v := range scanKeywords(s) {
		if !IsSecretParam(v.name) || v.start == v.end {
			continue
		}
		raw := s[v.start:v.end]
		out = append(out, raw)
		if len(raw) >= 2 && strings.ContainsRune(`'"{`, rune(raw[0])) {
			if inner := raw[1 : len(raw)-1]; inner != "" {
				out = append(out, inner, strings.ReplaceAll(inner, `\`, ""))
			}
		}
	}
	return out
}

// urlInTextRE matches a URL quoted in a message: a scheme, "://", and
// what follows up to a space or a quote.
var urlInTextRE = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s`'\"<>]+")

// secretWordRE matches a "name=value" word of a message.
var secretWordRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.-]*)(\s*=\s*)([^\s` + "`" + `'"]+)`)

// RedactText returns s, a message from another library that may quote a
// URL or a connection string (a YAML parser's error, say), with every URL
// in it redacted as RedactURL does and the value of every secret
// "name=value" word (IsSecretParam) masked.
func RedactText(s string) string {
	s = urlInTextRE.ReplaceAllStringFunc(s, RedactURL)
	return secretWordRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := secretWordRE.FindStringSubmatch(m)
		if !IsSecretParam(sub[1]) || sub[3] == Mask {
			return m
		}
		return sub[1] + sub[2] + Mask
	})
}
