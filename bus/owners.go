package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/busline/busline/transports"
)

// claimGroups records this service as the owner of each listener's
// consumer group, where the transport keeps records
// (transports.RecordStore: memory, Redis, RabbitMQ), and refuses a group
// that another (service, listener) pair owns. A group that has no owner yet
// — one created before owners were recorded, too — is claimed by the first
// pair that starts. On a transport without records (or whose broker
// reports transports.ErrUnsupported for them) the check is skipped.
func (b *Bus) claimGroups(ctx context.Context) error {
	rs, ok := b.transport.(transports.RecordStore)
	if !ok {
		return nil
	}
	for _, l := range b.listeners {
		want := ownerRecord(b.cfg.Service, l.name)
		got, err := rs.ClaimRecord(ctx, transports.RecordKindOwners, l.group, []byte(want))
		if errors.Is(err, transports.ErrUnsupported) {
			// The broker cannot keep records after all (an old RabbitMQ
			// without stream queues): as on a transport without records.
			b.log.Warn("the transport keeps no records: consumer group owners are not checked", slog.Any("error", err))
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: listener %q: record the owner of group %q: %w", ErrUnavailable, l.name, l.group, err)
		}
		if string(got) == want {
			continue
		}
		service, listener := parseOwner(string(got))
		return fmt.Errorf("%w: consumer group %q belongs to service %q listener %q; service %q listener %q spells the same group and would silently share its events: rename one of the listeners",
			ErrGroupConflict, l.group, service, listener, b.cfg.Service, l.name)
	}
	return nil
}

// ownerRecord is the value of an owners record: "{service}/{listener}"
// (neither name may hold a "/").
func ownerRecord(service, listener string) string { return service + "/" + listener }

func parseOwner(v string) (service, listener string) {
	service, listener, _ = strings.Cut(v, "/")
	return service, listener
}

// warnTraps logs, once per Start, the defaults that surprise a new user on a
// transport shared by several processes.
func (b *Bus) warnTraps() {
	if b.scheme == "memory" || len(b.listeners) == 0 {
		return
	}
	if b.randomProcess {
		b.log.Warn("the process name changes at every start ({random4}, {random8}, {pid}): after a restart, events this process took but did not acknowledge wait for AckTimeout before another process gets them; set Config.Process (BUSLINE_PROCESS) to a stable name such as \"{hostname}\" to resume them at once",
			slog.String("process_pattern", b.cfg.Process))
	}
	if !b.dedupShared {
		b.log.Warn("the idempotency store is memory://: duplicates are dropped only within this process; set Config.Idempotency (BUSLINE_IDEMPOTENCY) to a redis:// or postgres:// store to dedup across processes")
	}
}

// subscribeError marks a failed subscription ErrUnavailable unless the
// transport refused the configuration itself.
func subscribeError(err error) error {
	if errors.Is(err, transports.ErrUnsupported) || errors.Is(err, transports.ErrInvalidConfig) || errors.Is(err, transports.ErrClosed) {
		return fmt.Errorf("bus: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
