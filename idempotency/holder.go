package idempotency

import (
	"context"
	"strings"
)

// Holder says who takes a lease: the process name within the consumer
// group and the run of that process (a value new at every start). A store
// that records the holder with its lease can let a restarted process take
// over the leases of its own earlier run at once instead of waiting for
// them to expire: process names are unique among live processes, so an
// earlier run of the same name is dead. This is the idempotency side of
// "own pending first".
type Holder struct {
	Process string
	Run     string
}

type holderKey struct{}

// WithHolder returns ctx carrying h; the middleware sets it for Begin.
func WithHolder(ctx context.Context, h Holder) context.Context {
	return withHolder(ctx, h)
}

// withHolder is WithHolder for h already converted to an interface value,
// which the middleware does once rather than at every message.
func withHolder(ctx context.Context, h any) context.Context {
	return context.WithValue(ctx, holderKey{}, h)
}

// HolderFrom returns the holder in ctx.
func HolderFrom(ctx context.Context) (Holder, bool) {
	h, ok := ctx.Value(holderKey{}).(Holder)
	return h, ok && h.Process != "" && h.Run != ""
}

// HolderToken returns a lease token that records h before a unique suffix.
// Without a holder it returns unique as it is.
func HolderToken(h Holder, unique string) string {
	if h.Process == "" || h.Run == "" {
		return unique
	}
	return "p=" + h.Process + ";r=" + h.Run + ";" + unique
}

// TokenHolder reads the holder a HolderToken recorded.
func TokenHolder(token string) (Holder, bool) {
	rest, ok := strings.CutPrefix(token, "p=")
	if !ok {
		return Holder{}, false
	}
	process, rest, ok := strings.Cut(rest, ";r=")
	if !ok {
		return Holder{}, false
	}
	run, _, ok := strings.Cut(rest, ";")
	if !ok || process == "" || run == "" {
		return Holder{}, false
	}
	return Holder{Process: process, Run: run}, true
}

// EarlierRun reports whether the lease token was taken by another run of
// the process in ctx: a lease its holder will never finish.
func EarlierRun(ctx context.Context, token string) bool {
	me, ok := HolderFrom(ctx)
	if !ok {
		return false
	}
	them, ok := TokenHolder(token)
	return ok && them.Process == me.Process && them.Run != me.Run
}

// ProcessNameKey is the key of the lease a bus holds on its process name
// in a consumer group while it listens (in a shared store that extends
// leases): "busline.process:{group}/{process}". A tool that must know
// whether a group is read looks for ProcessNameKey(group, "") followed by
// any process.
func ProcessNameKey(group, process string) string {
	return Key("busline.process", group+"/"+process)
}
