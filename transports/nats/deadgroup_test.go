package nats

import (
	"context"
	"errors"
	"testing"

	"github.com/busline/busline/transports"
)

// The dead-letter commands take group names from users: a name no
// consumer group can have ('*' and '>' would be subject wildcards that
// match every group's dead letters) is not found, and nothing is listed,
// replayed or purged under it.
func TestDeadLettersOfAnImpossibleGroup(t *testing.T) {
	tr := openTransport(t, testURL(t, "", ""))
	ctx := context.Background()
	for _, g := range []string{"*", ">", "a.*", "a b", ""} {
		if list, err := tr.DeadLetters(ctx, g, 0); !errors.Is(err, transports.ErrNotFound) || len(list) != 0 {
			t.Errorf("DeadLetters(%q) = %d, %v; want none, ErrNotFound", g, len(list), err)
		}
		if err := tr.ReplayDeadLetter(ctx, g, "1"); !errors.Is(err, transports.ErrNotFound) {
			t.Errorf("ReplayDeadLetter(%q): %v; want ErrNotFound", g, err)
		}
		if n, err := tr.PurgeDeadLetters(ctx, g); !errors.Is(err, transports.ErrNotFound) || n != 0 {
			t.Errorf("PurgeDeadLetters(%q) = %d, %v; want 0, ErrNotFound", g, n, err)
		}
	}
}
