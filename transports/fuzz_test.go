package transports_test

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/busline/busline/transports"
	_ "github.com/busline/busline/transports/memory"
)

// FuzzOpenURL: any URL opens a transport or fails with a clear error that
// never repeats the password.
func FuzzOpenURL(f *testing.F) {
	for _, s := range []string{
		"memory://", "memory://shared?maxlen=10", "memory://?maxlen=-1", "memory://?x=1",
		"redis://:secret@host:6379/0", "amqp://user:secret@host/vh", "kafka://secret@h", "",
		"::", "%zz://x", "memory", "memory://a/b/c", "http://user:secret@[::1", "memory://?maxlen=99999999999999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tr, err := transports.Open(context.Background(), raw, transports.OpenOptions{})
		if err == nil {
			_ = tr.Close()
			return
		}
		if !errors.Is(err, transports.ErrInvalidURL) && !errors.Is(err, transports.ErrUnknownScheme) {
			t.Fatalf("Open(%q): error %v matches no sentinel", raw, err)
		}
		if secret, rest := credentials(raw); len(secret) >= 6 && !strings.Contains(rest, secret) && strings.Contains(err.Error(), secret) {
			t.Fatalf("Open(%q): error %q shows the credentials %q", raw, err, secret)
		}
	})
}

// credentials returns the password of raw (or its user name when it has no
// password) and raw without its user info.
func credentials(raw string) (secret, rest string) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return "", raw
	}
	secret, has := u.User.Password()
	if !has {
		secret = u.User.Username()
	}
	c := *u
	c.User = nil
	return secret, c.String()
}

// FuzzRedactURL: the password of a URL (everything between the first ':'
// after "://" and the last '@') never shows before the last '@' of
// RedactURL's result, however the password's characters broke the URL's
// parsing.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{
		"redis://u:secret@h:6379/0", "redis://:/secret@h/0", "redis://u:12/sec?ret@h", "redis://u:12#secret@h",
		"amqp://u:se%2Fcret@h/vh", "redis://u:sec ret@h", "redis://u:secret@h/0?client_name=me@x", "postgres://u:secret@h/db?sslmode=disable",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		scheme, rest, ok := strings.Cut(raw, "://")
		at := strings.LastIndex(rest, "@")
		if !ok || at < 0 {
			return
		}
		user, pw, has := strings.Cut(rest[:at], ":")
		if !has || len(pw) < 6 || strings.Contains(rest[at:], pw) || strings.Contains(scheme, pw) || strings.Contains(user, pw) {
			return
		}
		if q := strings.IndexByte(pw, '?'); q >= 0 && regexp.MustCompile(`[?&][^=&@]+=`).MatchString(pw[q:]) {
			// "u:12?name=pw@h" is a parameter holding an '@' to a parser;
			// a known ambiguity (redact.go, userinfoPart).
			return
		}
		got := transports.RedactURL(raw)
		if i := strings.LastIndex(got, "@"); i >= 0 {
			got = got[:i] // what follows is the host and the rest, shown
		}
		if strings.Contains(got, pw) {
			t.Fatalf("RedactURL(%q) = %q shows the password %q", raw, transports.RedactURL(raw), pw)
		}
	})
}
