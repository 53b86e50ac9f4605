package dashboard

import (
	"net/url"
	"strings"
)

// shownName returns the name the page shows for Options.Name: as given,
// except that a URL loses its secrets — the userinfo's password, or a
// user name given alone (some URLs carry a token there), and the values
// of secret-bearing query parameters become "xxxxx". A name that looks
// like a URL with userinfo but does not parse is not shown at all.
//
// TODO(redact): transports.RedactURL does this for the whole project once
// the safety branch is on main; use it here then.
func shownName(name string) string {
	if !strings.Contains(name, "://") {
		return name
	}
	u, err := url.Parse(name)
	if err != nil || u.Opaque != "" {
		if strings.ContainsAny(name, "@?#") {
			return "(a URL that does not parse)"
		}
		return name
	}
	c := *u
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			c.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			c.User = url.User("xxxxx")
		}
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, hasValue := strings.Cut(p, "=")
			if key, err := url.QueryUnescape(k); hasValue && (err != nil || secretParam(key)) {
				parts[i] = k + "=xxxxx"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	if c.Fragment != "" {
		c.Fragment, c.RawFragment = "xxxxx", ""
	}
	return c.String()
}

// secretParam reports whether a query parameter carries a secret:
// password, sentinel_password, token, secret, api_key, auth, sslkey … in
// any case and spelling.
func secretParam(name string) bool {
	n := strings.NewReplacer("_", "", "-", "", ".", "").Replace(strings.ToLower(name))
	for _, s := range []string{"pass", "pwd", "secret", "token", "auth", "credential", "signature", "cert"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return strings.HasSuffix(n, "key")
}
