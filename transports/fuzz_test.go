package transports_test

import (
	"context"
	"errors"
	"net/url"
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
