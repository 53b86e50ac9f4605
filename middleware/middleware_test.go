package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/busline/busline/middleware"
	"github.com/busline/busline/transports"
)

func newMsg(attempt int) (*message.Message, *transports.DeliveryInfo) {
	msg := message.NewMessage("event-1", []byte(`{}`))
	info := &transports.DeliveryInfo{Attempt: attempt, Group: "svc-l", Topic: "api.happened"}
	msg.SetContext(transports.WithDeliveryInfo(context.Background(), info))
	return msg, info
}

func handlerReturning(calls *int, errs ...error) message.HandlerFunc {
	return func(*message.Message) ([]*message.Message, error) {
		i := *calls
		*calls++
		if i < len(errs) {
			return nil, errs[i]
		}
		return nil, nil
	}
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) message.HandlerMiddleware {
		return func(h message.HandlerFunc) message.HandlerFunc {
			return func(msg *message.Message) ([]*message.Message, error) {
				order = append(order, name)
				return h(msg)
			}
		}
	}
	h := middleware.Chain(mw("outer"), nil, mw("inner"))(func(*message.Message) ([]*message.Message, error) {
		order = append(order, "handler")
		return nil, nil
	})
	msg, _ := newMsg(1)
	if _, err := h(msg); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "outer,inner,handler" {
		t.Errorf("order = %v", order)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad input")
	err := middleware.Permanent(base)
	if !middleware.IsPermanent(err) || !errors.Is(err, middleware.ErrPermanent) || !errors.Is(err, base) {
		t.Errorf("Permanent(%v) = %v loses its marks", base, err)
	}
	if middleware.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if middleware.Permanent(err) != err {
		t.Error("Permanent twice wraps twice")
	}
	if middleware.IsPermanent(base) {
		t.Error("a plain error is permanent")
	}
}

func TestRecover(t *testing.T) {
	h := middleware.Recover(func(*message.Message) ([]*message.Message, error) { panic("kaboom") })
	msg, _ := newMsg(1)
	_, err := h(msg)
	if !errors.Is(err, middleware.ErrPanic) || !strings.Contains(err.Error(), "kaboom") || !strings.Contains(err.Error(), "goroutine") {
		t.Errorf("error %q lacks ErrPanic, the value or the stack", err)
	}
}

func TestTimeoutSetsAndRestoresDeadline(t *testing.T) {
	msg, _ := newMsg(1)
	orig := msg.Context()
	h := middleware.Timeout(20 * time.Millisecond)(func(m *message.Message) ([]*message.Message, error) {
		if _, ok := m.Context().Deadline(); !ok {
			t.Error("no deadline inside")
		}
		<-m.Context().Done()
		return nil, m.Context().Err()
	})
	if _, err := h(msg); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "handler timed out after 20ms (the listener's Timeout)") {
		t.Errorf("err = %v; want DeadlineExceeded, saying the listener's Timeout passed", err)
	}
	if msg.Context() != orig {
		t.Error("original context not restored")
	}
	if transports.DeliveryInfoFrom(msg.Context()) == nil {
		t.Error("delivery info lost")
	}
}

func TestRetryInProcessThenRedeliveryDelay(t *testing.T) {
	calls := 0
	fail := errors.New("flaky")
	p := middleware.RetryPolicy{Tries: 3, InitialInterval: time.Millisecond, RedeliveryDelay: func(a int) time.Duration { return time.Duration(a) * time.Hour }}
	msg, info := newMsg(2)
	_, err := middleware.Retry(p)(handlerReturning(&calls, fail, fail, fail, fail))(msg)
	if !errors.Is(err, fail) || calls != 3 {
		t.Errorf("err %v after %d calls, want the failure after 3", err, calls)
	}
	if info.RetryAfter != 2*time.Hour {
		t.Errorf("RetryAfter = %s, want RedeliveryDelay(attempt 2)", info.RetryAfter)
	}

	calls = 0
	msg, info = newMsg(1)
	if _, err := middleware.Retry(p)(handlerReturning(&calls, fail))(msg); err != nil || calls != 2 {
		t.Errorf("err %v after %d calls, want success on the second", err, calls)
	}
	if info.RetryAfter != 0 {
		t.Errorf("RetryAfter set on success: %s", info.RetryAfter)
	}

	calls = 0
	msg, _ = newMsg(1)
	if _, err := middleware.Retry(p)(handlerReturning(&calls, middleware.Permanent(fail)))(msg); !middleware.IsPermanent(err) || calls != 1 {
		t.Errorf("permanent error retried: %d calls, err %v", calls, err)
	}
}

func TestRetryStopsWaitingWhenContextEnds(t *testing.T) {
	calls := 0
	msg, info := newMsg(1)
	ctx, cancel := context.WithCancel(msg.Context())
	msg.SetContext(ctx)
	cancel()
	p := middleware.RetryPolicy{Tries: 5, InitialInterval: time.Hour}
	if _, err := middleware.Retry(p)(handlerReturning(&calls, errors.New("x"), errors.New("x")))(msg); err == nil || calls != 1 {
		t.Errorf("calls %d err %v: want one call, then give up waiting", calls, err)
	}
	if info.RetryAfter <= 0 {
		t.Error("no redelivery delay set")
	}
}

type sink struct {
	reasons  []string
	attempts []int
	fail     error
}

func (s *sink) store(_ context.Context, _ *message.Message, reason string, attempts int) error {
	if s.fail != nil {
		return s.fail
	}
	s.reasons = append(s.reasons, reason)
	s.attempts = append(s.attempts, attempts)
	return nil
}

func TestDeadLetter(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name      string
		attempt   int
		err       error
		poison    error
		wantErr   bool
		wantDead  string
		wantCalls int
	}{
		{"success", 1, nil, nil, false, "", 1},
		{"failure before the last delivery is returned", 2, boom, nil, true, "", 1},
		{"failure on the last delivery is dead-lettered", 3, boom, nil, false, "boom", 1},
		{"permanent at once", 1, middleware.Permanent(boom), nil, false, "permanent: boom", 1},
		{"poison without running", 1, nil, errors.New("bad entry"), false, "poison: bad entry", 0},
		{"past the limit without running", 4, nil, nil, false, "exceeded 3 deliveries", 0},
		{"not attempted is never dead-lettered", 3, transports.ErrNotAttempted, nil, true, "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &sink{}
			calls := 0
			msg, info := newMsg(c.attempt)
			info.Poison = c.poison
			h := middleware.DeadLetter(middleware.DeadLetterOptions{MaxDeliveries: 3, Sink: s.store})(handlerReturning(&calls, c.err))
			_, err := h(msg)
			if (err != nil) != c.wantErr {
				t.Errorf("err = %v, want error %v", err, c.wantErr)
			}
			if calls != c.wantCalls {
				t.Errorf("handler calls = %d, want %d", calls, c.wantCalls)
			}
			switch {
			case c.wantDead == "" && len(s.reasons) != 0:
				t.Errorf("dead-lettered %q", s.reasons)
			case c.wantDead != "" && (len(s.reasons) != 1 || !strings.Contains(s.reasons[0], c.wantDead) || s.attempts[0] != c.attempt):
				t.Errorf("dead letters %q attempts %v, want one with %q and attempt %d", s.reasons, s.attempts, c.wantDead, c.attempt)
			}
			if c.wantDead != "" && info.Outcome != transports.OutcomeDeadLettered {
				t.Errorf("outcome = %q", info.Outcome)
			}
		})
	}
}

// A dead letter that could not be stored is not acked (the event comes
// back), and the failure is an error in the log, not only a failed try.
func TestDeadLetterSinkFailureIsNotAcked(t *testing.T) {
	s := &sink{fail: errors.New("dead-letter store down")}
	calls := 0
	msg, _ := newMsg(1)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	_, err := middleware.DeadLetter(middleware.DeadLetterOptions{MaxDeliveries: 3, Sink: s.store, Logger: log})(handlerReturning(&calls, middleware.Permanent(errors.New("x"))))(msg)
	if err == nil || !strings.Contains(err.Error(), "dead-letter store down") {
		t.Errorf("err = %v: a dead letter that could not be stored must not be acked", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "dead-lettering an event failed") {
		t.Errorf("logs %q: want the failed dead letter at level ERROR", logs.String())
	}
}

// A reason longer than transports.MaxReasonBytes (a panic's stack) is cut
// to fit, says so, and stays valid UTF-8.
func TestDeadLetterReasonIsCut(t *testing.T) {
	s := &sink{}
	msg, _ := newMsg(1)
	long := strings.Repeat("é", transports.MaxReasonBytes)
	if _, err := middleware.DeadLetter(middleware.DeadLetterOptions{MaxDeliveries: 3, Sink: s.store})(func(*message.Message) ([]*message.Message, error) {
		return nil, middleware.Permanent(errors.New(long))
	})(msg); err != nil {
		t.Fatal(err)
	}
	if len(s.reasons) != 1 {
		t.Fatalf("dead letters %d, want 1", len(s.reasons))
	}
	r := s.reasons[0]
	if len(r) > transports.MaxReasonBytes || !strings.HasPrefix(r, "permanent: éé") || !strings.HasSuffix(r, "bytes cut)") || !utf8.ValidString(r) {
		t.Errorf("reason of %d bytes (valid UTF-8 %v), ending %q: want at most %d, the start kept and the cut said", len(r), utf8.ValidString(r), r[max(0, len(r)-40):], transports.MaxReasonBytes)
	}
}

func TestDeadLetterCatchesPanicOnLastDelivery(t *testing.T) {
	s := &sink{}
	msg, _ := newMsg(3)
	h := middleware.DeadLetter(middleware.DeadLetterOptions{MaxDeliveries: 3, Sink: s.store})(func(*message.Message) ([]*message.Message, error) { panic("always") })
	if _, err := h(msg); err != nil {
		t.Fatalf("err = %v, want the panic dead-lettered", err)
	}
	if len(s.reasons) != 1 || !strings.Contains(s.reasons[0], "always") {
		t.Errorf("dead letters = %q, want the panic as reason", s.reasons)
	}
}

func TestRetryPolicyDefaultsAreStable(t *testing.T) {
	p := middleware.RetryPolicy{Jitter: -1}.WithDefaults().WithDefaults()
	if p.Jitter > 0 {
		t.Errorf("Jitter -1 became %v after defaults applied twice", p.Jitter)
	}
	d := middleware.RetryPolicy{}.WithDefaults()
	if d.Tries != 3 || d.InitialInterval != 100*time.Millisecond || d.Jitter != 0.2 || d.RedeliveryDelay == nil {
		t.Errorf("defaults = %+v", d)
	}
}

func TestDeadLetterIgnoresFailuresAfterShutdown(t *testing.T) {
	s := &sink{}
	msg, _ := newMsg(3)
	ctx, cancel := context.WithCancel(msg.Context())
	msg.SetContext(ctx)
	h := middleware.DeadLetter(middleware.DeadLetterOptions{MaxDeliveries: 3, Sink: s.store})(func(m *message.Message) ([]*message.Message, error) {
		cancel() // the bus cancels handler contexts after its shutdown timeout
		return nil, m.Context().Err()
	})
	if _, err := h(msg); err == nil {
		t.Fatal("a delivery cut by shutdown was settled as dead-lettered")
	}
	if len(s.reasons) != 0 {
		t.Errorf("dead letters = %q", s.reasons)
	}
}

// An event over MaxDeliveries that the group handled before (its acks were
// lost in crashes) is acknowledged, not dead-lettered; one not handled, or
// whose check failed, is dead-lettered as without Done.
func TestDeadLetterSparesAnEventHandledBefore(t *testing.T) {
	for _, c := range []struct {
		name string
		done bool
		err  error
		dead int
	}{
		{"handled before", true, nil, 0},
		{"never handled", false, nil, 1},
		{"check failed", false, errors.New("store down"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &sink{}
			calls := 0
			msg, info := newMsg(4)
			h := middleware.DeadLetter(middleware.DeadLetterOptions{MaxDeliveries: 3, Sink: s.store,
				Done: func(context.Context, *message.Message) (bool, error) { return c.done, c.err },
			})(handlerReturning(&calls))
			if _, err := h(msg); err != nil {
				t.Fatal(err)
			}
			if calls != 0 || len(s.reasons) != c.dead {
				t.Fatalf("handler calls %d, dead letters %q; want 0 calls and %d dead letters", calls, s.reasons, c.dead)
			}
			if c.done && info.Outcome != transports.OutcomeDuplicateSkipped {
				t.Errorf("outcome %q, want %q", info.Outcome, transports.OutcomeDuplicateSkipped)
			}
		})
	}
}
