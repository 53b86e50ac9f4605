package transports_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/busline/busline/transports"
)

func TestRedactURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"memory://", "memory://"},
		{"memory://shop", "memory://shop"},
		{"redis://127.0.0.1:6379/0?prefix=a:", "redis://127.0.0.1:6379/0?prefix=a:"},
		{"redis://:S3CRET@h:6379/0", "redis://:xxxxx@h:6379/0"},
		{"amqp://guest:S3CRET@h:5672/", "amqp://guest:xxxxx@h:5672/"},
		{"amqp://T0KEN@h/", "amqp://xxxxx@h/"},
		{"redis:/u:S3CRET@h", "redis://xxxxx@h"}, // the userinfo in the path
		{"redis://h/0?master_name=m&password=S3CRET&addr=h2", "redis://h/0?master_name=m&password=xxxxx&addr=h2"},
		{"redis://h/0?Sentinel_Password=S3CRET", "redis://h/0?Sentinel_Password=xxxxx"},
		{"postgres://u@h/db?sslpassword=S3CRET&sslmode=require", "postgres://xxxxx@h/db?sslpassword=xxxxx&sslmode=require"},
		{"x://h/?token=S3CRET&secret=S3CRET&key=S3CRET&access_key=S3CRET&API-KEY=S3CRET&maxlen=5",
			"x://h/?token=xxxxx&secret=xxxxx&key=xxxxx&access_key=xxxxx&API-KEY=xxxxx&maxlen=5"},
		{"redis://h/0?pass%77ord=S3CRET", "redis://h/0?pass%77ord=xxxxx"},
		{"redis://h/0?%zz=S3CRET", "redis://h/0?%zz=xxxxx"},
		{"redis://u:S3CRET@h:bad port/0", "redis://xxxxx"},
		{"redis://u:S3 CRET@h/0", "redis://xxxxx"},
		{"redis:u:S3CRET@h", "redis:xxxxx"},
		{"::S3CRET", "xxxxx"},
		{"redis://h/0#S3CRET", "redis://h/0#xxxxx"},
		// The user name is the password.
		{"amqp://S3CRET:S3CRET@h:5672/", "amqp://xxxxx:xxxxx@h:5672/"},
		// A password holding '/' or '?' (not percent-encoded) ends the
		// authority early: the rest of the userinfo is in the path or query.
		{"redis://:/S3CRET@h:6379/0", "redis://xxxxx@h:6379/0"},
		{"redis://u:31337/S3CRET@h:6379/0", "redis://xxxxx@h:6379/0"},
		{"redis://:?S3CRET@h:6379/0", "redis://xxxxx@h:6379/0"},
		{"redis://u:31337#S3CRET@h:6379/0", "redis://xxxxx@h:6379/0"},
		{"redis://u:12/S3CRET?x@h/0", "redis://xxxxx@h/0"},
		{"redis://u:12?S3CRET&y@h/0", "redis://xxxxx@h/0"},
		{"redis://h:6379/0?client_name=me@host", "redis://h:6379/0?client_name=me@host"},
		// Connection strings that do not start with name=, and keywords after a URL.
		{"db password=S3CRET", "db password=xxxxx"},
		{"Data Source=db;User ID=u;Password=S3CRET;", "Data Source=db;User ID=u;Password=xxxxx"},
		{"postgres://u@h/db sslpassword=S3CRET", "postgres://xxxxx@h/db%20sslpassword=xxxxx"},
		{"amqp://u:S3CRET@h:5672/team%40eu", "amqp://u:xxxxx@h:5672/team%40eu"}, // a vhost holding '@'
		// A keyword/value connection string given where a URL belongs.
		{"host=db password=S3CRET dbname=shop", "host=db password=xxxxx dbname=shop"},
		{"host=db password='S3 CRET' user=u", "host=db password=xxxxx user=u"},
		{"Server=db;Pwd=S3CRET;Database=shop", "Server=db;Pwd=xxxxx;Database=shop"},
		{"host=db password=S3&CRET dbname=x", "host=db password=xxxxx dbname=x"},
		{"host=db password=S3;CRET", "host=db password=xxxxx"},
		{"host=db password=S3?CRET#frag dbname=x", "host=db password=xxxxx dbname=x"},
		{"host=db password=S3@CRET dbname=x", "host=db password=xxxxx dbname=x"},
		{`host=db password="S3 CRET" dbname=x`, "host=db password=xxxxx dbname=x"},
		{`host=db password='S3 \'CRET' dbname=x`, "host=db password=xxxxx dbname=x"},
		{"Server=db;Pwd={S3 CRET;X};Database=shop", "Server=db;Pwd=xxxxx;Database=shop"},
		{"host=db password = S3CRET", "host=db password = xxxxx"},
		{"password='S3CRET", "password=xxxxx"},
		{"nats://h:4222?creds=/etc/S3CRET.creds", "nats://h:4222?creds=xxxxx"},
	} {
		got := transports.RedactURL(c.in)
		if got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(got, "S3CRET") || strings.Contains(got, "T0KEN") {
			t.Errorf("RedactURL(%q) = %q leaks the secret", c.in, got)
		}
	}
}

func TestIsSecretParam(t *testing.T) {
	for _, k := range []string{"password", "PASSWORD", "sentinel_password", "sslpassword", "passwd", "pwd", "token",
		"access_token", "secret", "client-secret", "key", "access_key", "api_key", "apikey", "sslkey", "auth", "creds", "nkey"} {
		if !transports.IsSecretParam(k) {
			t.Errorf("%s is not secret", k)
		}
	}
	for _, k := range []string{"prefix", "maxlen", "master_name", "addr", "cluster", "exchange", "queue_prefix", "sslmode", "db", "pool_size"} {
		if transports.IsSecretParam(k) {
			t.Errorf("%s is secret", k)
		}
	}
}

func TestRedactError(t *testing.T) {
	base := errors.New("boom")
	err := fmt.Errorf("dial redis://:S3CRET@h (password S3CRET, token T0KEN%%2F): %w", base)
	got := transports.RedactError(err, "redis://:S3CRET@h/0?token=T0KEN%2F")
	if strings.Contains(got.Error(), "S3CRET") || strings.Contains(got.Error(), "T0KEN") {
		t.Fatalf("leaks: %v", got)
	}
	if !errors.Is(got, base) {
		t.Fatal("chain lost")
	}
	for _, c := range []struct{ dsn, secret string }{
		{"redis://:/S3CRET@h:6379/0", "/S3CRET@h:6379/0"},
		{"redis://u:31337/S3CRET@h:6379/0", "31337/S3CRET"},
		{"redis://:?S3CRET@h:6379/0", "S3CRET@h:6379/0"},
		{"redis://u:S3%20CRET@h", "S3%20CRET"},
		{"redis://u:S3%2fCRET@h", "S3%2fCRET"},
		{"redis://u:31337#S3CRET@h:6379/0", "31337#S3CRET"},
		{"host=db password='S3 CRET' user=u", "S3 CRET"},
		{"host=db password=S3?CRET dbname=x", "S3?CRET"},
		{"host=db password=S3CRET#frag", "S3CRET#frag"},
		{"host=db password=ab;S3CRET", "ab;S3CRET"},
		{`password="S3 \"CRET"`, `S3 "CRET`},
	} {
		got := transports.RedactError(fmt.Errorf("connect %s: bad password %s", c.dsn, c.secret), c.dsn)
		if strings.Contains(got.Error(), "S3") || strings.Contains(got.Error(), "CRET") {
			t.Errorf("RedactError leaks a keyword/value secret of %q: %v", c.dsn, got)
		}
	}
	if transports.RedactError(nil, "x://") != nil {
		t.Fatal("nil")
	}
	if transports.RedactError(base, "redis://h") != base {
		t.Fatal("an error without secrets is returned as is")
	}
}

// ParseURL's errors show a URL without a scheme as it was typed (its
// secrets masked) and say what a transport URL starts with.
func TestParseURLErrors(t *testing.T) {
	for _, c := range []struct{ in, want, not string }{
		{"not a url", `"not a url" has no scheme (want memory://`, "%20"},
		{"127.0.0.1:6379", "(want memory://, redis://", ""},
		{"//:S3CRET@host:6379", "has no scheme", "S3CRET"},
		{"redis//u:S3CRET@h", "user and password in the path", "S3CRET"},
		{"redis:/u:S3CRET@h", "user and password in the path", "S3CRET"},
		{"redis:u:S3CRET@h", `without "//"`, "S3CRET"},
		{"redis://u:S3CRET", "invalid port after the host: percent-encode", "S3CRET"},
		{"amqp://guest:S3CRET/", "invalid port after the host", "S3CRET"},
		{"redis://:pa?S3CRET@h:6379/0", "percent-encode a ':', '/', '?', '#' or '@'", "S3CRET"},
		{"guest:guest", "is not a URL: no \"//\"", "guest"},
		{"guest:guest@127.0.0.1:5672", "user and password without \"//\" (want scheme://", "guest"},
		{"redis:u:S3CRET", "redis:xxxxx is not a URL", "S3CRET"},
		{"//u:%S3CRET@h", "invalid URL escape", "S3"},
		{"localhost:6379", `"localhost:6379" is a host and port`, ""},
		{"redis://:/S3CRET@h:6379/0", "percent-encode a '/', '?' or '#' in the password", "S3CRET"},
		{"redis://u:31337#S3CRET@h:6379/0", "percent-encode", "31337"},
		{"postgres://u:S3CRET@h/db sslpassword=S3CRET", "has a space", "S3CRET"},
		{"db password=S3CRET", "has no scheme", "S3CRET"},
		{"amqp://guest:31337/S3CRET@h:5672/", "percent-encode", "31337"},
		{"redis://:?S3CRET@h:6379/0", "percent-encode", "S3CRET"},
		{"host=db password=S3CRET dbname=shop", `"host=db password=xxxxx dbname=shop" is a keyword/value connection string`, "S3CRET"},
		{"host=db password='S3 CRET'", "keyword/value", "S3"},
		{"host=db password=S3@CRET dbname=x", "keyword/value", "CRET"},
		{"host=db password=S3?CRET#x dbname=x", "keyword/value", "CRET"},
		{"redis:6379", `"redis:6379" is a host and port`, ""},
		{"localhost:6379/0", `"localhost:6379/0" is a host and port`, ""},
	} {
		_, err := transports.ParseURL(c.in)
		if !errors.Is(err, transports.ErrInvalidURL) {
			t.Fatalf("%q: %v, want ErrInvalidURL", c.in, err)
		}
		if !strings.Contains(err.Error(), c.want) || (c.not != "" && strings.Contains(err.Error(), c.not)) {
			t.Errorf("%q: %v, want %q and not %q", c.in, err, c.want, c.not)
		}
	}
	for _, ok := range []string{"amqp://u:p%2Fw@h:5672/team%40eu", "redis://:p%3Fw@h:6379/0", "postgres://u@h/db?sslmode=disable", "memory:orders", "memory:", "memory://orders"} {
		if _, err := transports.ParseURL(ok); err != nil {
			t.Errorf("ParseURL(%q): %v", ok, err)
		}
	}
}

func TestRedactText(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"yaml: cannot decode !!str `redis://:S3CRET@h:6379/0` as a !!int", "yaml: cannot decode !!str `redis://:xxxxx@h:6379/0` as a !!int"},
		{`bad "amqp://guest:guest@h/" and token=S3CRET here`, `bad "amqp://xxxxx:xxxxx@h/" and token=xxxxx here`},
		{"connect host=db password=S3CRET dbname=x", "connect host=db password=xxxxx dbname=x"},
		{"nothing secret: maxlen=5", "nothing secret: maxlen=5"},
		{"user=app,password=S3CRET;host=db", "user=app,password=xxxxx;host=db"},
		{"Server=db;Uid=u;Pwd=S3CRET;", "Server=db;Uid=u;Pwd=xxxxx;"},
		{`password='S3 CRET' and token="S3CRET"`, `password=xxxxx and token=xxxxx`},
		{"author=alice key=orders.created routing_key=x token_count=5", "author=alice key=orders.created routing_key=x token_count=5"},
	} {
		if got := transports.RedactText(c.in); got != c.want {
			t.Errorf("RedactText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A dedup store's URL given as a transport says so.
func TestOpenAStoreURL(t *testing.T) {
	_, err := transports.Open(context.Background(), "postgres://u:S3CRET@h/db", transports.OpenOptions{})
	if !errors.Is(err, transports.ErrUnknownScheme) || !strings.Contains(err.Error(), "dedup store's URL") || strings.Contains(err.Error(), "S3CRET") {
		t.Fatalf("Open(postgres://...): %v; want ErrUnknownScheme saying it is a dedup store's URL, without the password", err)
	}
}
