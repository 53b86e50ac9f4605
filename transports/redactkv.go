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
			// Not "name=" here ("db password=pw", "Data Source=x"): on
			// to the next word.
			k := strings.IndexAny(s[i:], " \t\n;")
			if k < 0 {
				break
			}
			i += k + 1
			continue
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

// wordRE matches the "name=" of a name=value word of a message.
var wordRE = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*`)

// RedactText returns s, a message from another library that may quote a
// URL or a connection string (a YAML parser's error, say), with every URL
// in it redacted as RedactURL does and the value of every secret
// "name=value" word (IsSecretWord) masked: a quoted value to its closing
// quote, another to the next space, ';', ',' or '&'.
func RedactText(s string) string {
	s = urlInTextRE.ReplaceAllStringFunc(s, RedactURL)
	var b strings.Builder
	last := 0
	for _, m := range wordRE.FindAllStringSubmatchIndex(s, -1) {
		if m[0] < last || !IsSecretWord(s[m[2]:m[3]]) {
			continue
		}
		start, end := m[1], m[1]
		if start < len(s) && strings.ContainsRune(`'"{`, rune(s[start])) {
			end = valueEnd(s, start)
		} else if k := strings.IndexAny(s[start:], " \t\n;,&`"); k >= 0 {
			end = start + k
		} else {
			end = len(s)
		}
		if end == start || s[start:end] == Mask {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(Mask)
		last = end
	}
	b.WriteString(s[last:])
	return b.String()
}

// IsSecretWord reports whether name, a word of free text followed by
// '=', names a secret: stricter than IsSecretParam, which also takes
// parts of words ("author", "routing_key") and would mask ordinary
// messages. Case, '_', '-' and '.' do not matter.
func IsSecretWord(name string) bool {
	n := strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(name))
	switch n {
	case "pass", "pwd", "auth", "authorization", "creds", "credentials", "apikey", "accesskey",
		"secretkey", "privatekey", "nkey", "sslkey", "signature":
		return true
	}
	for _, suffix := range []string{"password", "passwd", "secret", "token"} {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}
