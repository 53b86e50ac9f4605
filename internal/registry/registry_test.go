package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestSchemes(t *testing.T) {
	r := New[int]("test", map[string]string{"b": "example.com/b"})
	r.Register("z", 1)
	r.Register("a", 2)
	if o, ok := r.Lookup("a"); !ok || o != 2 {
		t.Errorf("Lookup(a) = %v, %v", o, ok)
	}
	if _, ok := r.Lookup("b"); ok {
		t.Error("Lookup of an unregistered scheme")
	}
	if got := strings.Join(r.Names(), ","); got != "a,z" {
		t.Errorf("Names = %s", got)
	}
	sentinel := errors.New("unknown")
	err := r.Unknown(sentinel, "b", "b://host", " (or all)")
	if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), `import _ "example.com/b" (or all)`) || !strings.Contains(err.Error(), "[a z]") {
		t.Errorf("Unknown = %v", err)
	}
	if err := r.Unknown(sentinel, "c", "c://", ""); !strings.Contains(err.Error(), "no package registers it") {
		t.Errorf("Unknown without a known package = %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second Register of a scheme did not panic")
		}
	}()
	r.Register("a", 3)
}
