package bus

import "testing"

// A name that changes at every start cannot resume its events at once: the
// random placeholders and {pid} are warned of, stable names are not.
func TestIsRandomProcess(t *testing.T) {
	for pattern, want := range map[string]bool{
		"{random4}": true, "w-{random8}": true, "{hostname}-{pid}": true,
		"{hostname}": false, "worker-1": false,
	} {
		if got := isRandomProcess(pattern); got != want {
			t.Errorf("isRandomProcess(%q) = %v, want %v", pattern, got, want)
		}
	}
}
