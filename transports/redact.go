package transports

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret that RedactURL and Redact hide.
const Mask = "xxxxx"

// RedactURL returns rawURL fit for errors, logs, tables and JSON: the
// password of the userinfo (or a user name given alone, which some URLs use
// for a token) and the value of every secret-bearing query parameter (see
// IsSecretParam) become "xxxxx", and so does the user name when it is the
// password ("guest:guest"). A URL that does not parse is never echoed:
// only its scheme survives, when it has one ("redis://xxxxx"). A URL whose
// password's unencoded '/', '?' or '#' ended its authority early shows
// nothing before its last '@' ("redis://xxxxx@h:6379/0"). A keyword/value
// connection string given where a URL belongs ("host=db password=pw")
// shows as typed with the values of its secret keywords masked.
//
// It is the one redaction function of Busline: drivers, stores, the busline
// command, examples and benchmarks print URLs through it (or Redact).
func RedactURL(rawURL string) string {
	if strings.TrimSpace(rawURL) == "" {
		return ""
	}
	if isKeywordValue(rawURL) {
		return redactKeywordValue(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return redactUnparsable(rawURL)
	}
	return Redact(u)
}

var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// redactUnparsable keeps only the scheme of a URL that does not parse: any
// other part may hold a secret that cannot be told from the rest.
func redactUnparsable(raw string) string {
	if s := schemeRE.FindString(raw); s != "" {
		return strings.ToLower(s) + "//" + Mask
	}
	return Mask
}

// Redact returns u as a string fit for errors and logs, as RedactURL does.
// A URL without a host keeps its "//" ("memory://", not "memory:").
func Redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	if u.Opaque != "" {
		// "redis:user:pass@host" parses as opaque: nothing in it can be
		// told apart safely.
		return u.Scheme + ":" + Mask
	}
	if u.Scheme == "" && u.Host == "" && u.User == nil {
		// Not a URL ("host=db password=pw", "db password=pw"): shown as
		// typed, not percent-encoded, its secret name=value words masked.
		raw := unescapeOrSelf(u.String())
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			raw = Mask + raw[i:]
		}
		return redactKeywordValue(raw)
	}
	if u.Host != "" && userinfoAfterHost(u) {
		// A password holding '/', '?' or '#' ended the authority early
		// ("redis://u:12/pw@h"): everything up to the last '@' may be secret.
		raw := u.String()
		return u.Scheme + "://" + Mask + raw[strings.LastIndex(raw, "@"):]
	}
	c := *u
	if u.User != nil {
		if p, has := u.User.Password(); has && p != u.User.Username() {
			c.User = url.UserPassword(u.User.Username(), Mask)
		} else if has {
			c.User = url.UserPassword(Mask, Mask) // "guest:guest": the name is the password
		} else {
			c.User = url.User(Mask)
		}
	}
	if i := strings.LastIndex(u.Path, "@"); i >= 0 && u.Host == "" {
		// "redis:/u:pass@h" puts the userinfo in the path.
		c.Path, c.RawPath = Mask+u.Path[i:], ""
	} else if strings.ContainsAny(u.Path, " \t") && strings.Contains(u.Path, "=") {
		// "postgres://u@h/db sslpassword=pw": keywords after a URL.
		c.Path, c.RawPath = redactKeywordValue(u.Path), ""
	}
	c.RawQuery = redactQuery(u.RawQuery)
	c.ForceQuery = false
	if c.Fragment != "" {
		c.Fragment, c.RawFragment = Mask, ""
	}
	s := c.String()
	if u.Scheme != "" && u.Host == "" && !strings.HasPrefix(s, u.Scheme+"://") {
		s = u.Scheme + "://" + strings.TrimPrefix(s, u.Scheme+":")
	}
	return s
}

// userinfoAfterHost reports whether part of u's userinfo fell after its
// host: an '@' typed in its path, in a query part before any '=', or in
// its fragment, where a password's unencoded '/', '?' or '#' put it.
func userinfoAfterHost(u *url.URL) bool {
	return pathHoldsAt(u) || userinfoInQuery(u.RawQuery) || strings.Contains(u.Fragment, "@")
}

// unescapeOrSelf undoes the percent-encoding of s, or returns s as it is.
func unescapeOrSelf(s string) string {
	if plain, err := url.PathUnescape(s); err == nil {
		return plain
	}
	return s
}

// pathHoldsAt reports whether the path of u holds an '@' as typed, not
// percent-encoded (a vhost or database named "a%40b" is no userinfo).
func pathHoldsAt(u *url.URL) bool { return strings.Contains(u.EscapedPath(), "@") }

// userinfoInQuery reports whether a part of a query holds an '@' before
// any '=': the userinfo of a URL whose password held a '?'.
func userinfoInQuery(rawQuery string) bool {
	for _, p := range strings.Split(rawQuery, "&") {
		if userinfoPart(p) {
			return true
		}
	}
	return false
}

// userinfoPart reports whether a query part holds an '@' before any '=',
// or after an '=' with no name: no parameter is written so, so it is the
// end of a userinfo. ("?name=a@b" is a parameter; a password holding
// "?name=" stays ambiguous when its URL still parses.)
func userinfoPart(p string) bool {
	name, value, _ := strings.Cut(p, "=")
	return strings.Contains(name, "@") || (name == "" && strings.Contains(value, "@"))
}

// redactQuery masks the values of secret parameters, keeping the order and
// the encoding of every other parameter as written.
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 && userinfoPart(p) {
			// "redis://:?pass@h": a password holding '?' put the
			// userinfo in the query.
			parts[i] = Mask + p[at:]
			continue
		}
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			// An undecodable name may hide a secret one: mask its value.
			name = "password"
		}
		if hasValue && IsSecretParam(name) {
			parts[i] = k + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

// IsSecretParam reports whether a URL query parameter carries a secret and
// must be masked: password, sentinel_password, sslpassword, passwd, pwd,
// token, secret, key, access_key, api_key, nkey, auth, creds, credentials, signature, sslcert/sslkey and
// their kind, in any case, with "_" or "-" or neither between the words.
func IsSecretParam(name string) bool {
	n := strings.ToLower(name)
	n = strings.NewReplacer("_", "", "-", "", ".", "").Replace(n)
	for _, s := range []string{"pass", "pwd", "secret", "token", "auth", "cred", "signature", "cert"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return n == "key" || strings.HasSuffix(n, "key") || n == "sslkey"
}

// RedactError returns err with every secret of the given URLs (passwords,
// user names, secret query values) replaced by "xxxxx" in its message, for
// errors from client libraries that may repeat part of a URL. errors.Is and
// errors.As see the original chain. It returns nil for nil.
func RedactError(err error, rawURLs ...string) error {
	if err == nil {
		return nil
	}
	var secrets []string
	for _, raw := range rawURLs {
		secrets = append(secrets, URLSecrets(raw)...)
	}
	msg := err.Error()
	out := msg
	for _, s := range secrets {
		out = strings.ReplaceAll(out, s, Mask)
	}
	if out == msg {
		return err
	}
	return &redactedError{msg: out, err: err}
}

// URLSecrets returns the secrets RedactURL hides in rawURL, in raw and
// decoded form: the userinfo password (or lone user name) and the values
// of secret query parameters. An unparsable URL yields the whole string.
func URLSecrets(rawURL string) []string {
	if isKeywordValue(rawURL) {
		return longEnough(keywordSecrets(rawURL))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		if rawURL == "" {
			return nil
		}
		return []string{rawURL}
	}
	var out []string
	add := func(raw string) {
		if len(raw) < 3 { // masking "1" everywhere would garble messages
			return
		}
		out = append(out, raw)
		if dec, err := url.QueryUnescape(raw); err == nil && dec != raw {
			out = append(out, dec)
		}
		if esc := url.QueryEscape(raw); esc != raw {
			out = append(out, esc)
		}
	}
	if u.Opaque != "" {
		add(u.Opaque)
	}
	if u.Scheme == "" && u.Host == "" && u.User == nil {
		for _, v := range keywordSecrets(unescapeOrSelf(u.String())) {
			add(v)
		}
	}
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		// The userinfo as typed, percent-encoding and all; and, when a
		// password's '/', '?' or '#' ended the authority early, every
		// piece of what came before the last '@'.
		authority := rest
		if k := strings.IndexAny(rest, "/?#"); k >= 0 {
			authority = rest[:k]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			addUserinfo(add, authority[:at])
		}
		if u.Host != "" && userinfoAfterHost(u) {
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				addUserinfo(add, rest[:at])
				for _, piece := range strings.FieldsFunc(rest[:at], func(r rune) bool { return strings.ContainsRune(":/?#&", r) }) {
					add(piece)
				}
			}
		}
	}
	if u.User != nil {
		if p, has := u.User.Password(); has {
			add(p)
		} else {
			add(u.User.Username())
		}
	}
	if i := strings.LastIndex(u.Path, "@"); i >= 0 && u.Host == "" {
		add(strings.TrimPrefix(u.Path[:i], "/"))
		if _, pw, ok := strings.Cut(u.Path[:i], ":"); ok {
			add(pw)
		}
	}
	if strings.Contains(u.Path, "=") {
		for _, v := range keywordSecrets(u.Path) {
			add(v)
		}
	}
	for _, p := range strings.Split(u.RawQuery, "&") {
		k, v, ok := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if ok && (err != nil || IsSecretParam(name)) {
			add(v)
		}
	}
	return out
}

// addUserinfo adds the secrets of a userinfo as typed: all of it, and the
// password after its first ':'.
func addUserinfo(add func(string), ui string) {
	add(ui)
	if _, pw, ok := strings.Cut(ui, ":"); ok {
		add(pw)
	}
}

// longEnough drops the values too short to mask in a message.
func longEnough(vs []string) []string {
	var out []string
	for _, v := range vs {
		if len(v) >= 3 {
			out = append(out, v)
		}
	}
	return out
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
