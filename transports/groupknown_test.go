package transports_test

import (
	"context"
	"errors"
	"testing"

	"github.com/busline/busline/transports"
)

// finderAndRecords finds the groups in found and holds owner records for
// those in owners; it counts the records reads.
type finderAndRecords struct {
	found, owners map[string]bool
	findErr       error
	reads         int
}

func (f *finderAndRecords) FindGroup(_ context.Context, g string) (bool, error) {
	return f.found[g], f.findErr
}

func (f *finderAndRecords) Records(context.Context, string) (map[string][]byte, error) {
	f.reads++
	out := map[string][]byte{}
	for g := range f.owners {
		out[g] = []byte("svc/listener")
	}
	return out, nil
}

func (f *finderAndRecords) PutRecord(context.Context, string, string, []byte) error { return nil }
func (f *finderAndRecords) ClaimRecord(_ context.Context, _, _ string, v []byte) ([]byte, error) {
	return v, nil
}
func (f *finderAndRecords) DeleteRecord(context.Context, string, string) error { return nil }

func TestCheckGroupKnownAsksTheFinderFirst(t *testing.T) {
	ctx := context.Background()
	tr := &finderAndRecords{found: map[string]bool{"billing": true}, owners: map[string]bool{"refunds": true}}

	if err := transports.CheckGroupKnown(ctx, tr, "billing"); err != nil || tr.reads != 0 {
		t.Errorf("a group the finder finds: %v after %d records reads; want nil after none", err, tr.reads)
	}
	if err := transports.CheckGroupKnown(ctx, tr, "refunds"); err != nil || tr.reads != 1 {
		t.Errorf("a group with only an owner record: %v after %d records reads; want nil after one", err, tr.reads)
	}
	if err := transports.CheckGroupKnown(ctx, tr, "nobody"); !errors.Is(err, transports.ErrNotFound) {
		t.Errorf("an unknown group: %v; want ErrNotFound", err)
	}
	tr.findErr = errors.New("broker down")
	if err := transports.CheckGroupKnown(ctx, tr, "nobody"); err != nil {
		t.Errorf("a finder that failed: %v; want nil (the group is taken to exist)", err)
	}
}
