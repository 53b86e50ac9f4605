package transports

import (
	"errors"
	"sync"
)

// Subscribers is the set of subscribers a transport opened, so that closing
// the transport closes them. The zero value is an open, empty set; it is
// safe for concurrent use.
type Subscribers[S interface {
	comparable
	Close() error
}] struct {
	mu     sync.Mutex
	closed bool
	m      map[S]struct{}
}

// Add records sub; it fails with ErrClosed once the set was closed.
func (s *Subscribers[S]) Add(sub S) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.m == nil {
		s.m = map[S]struct{}{}
	}
	s.m[sub] = struct{}{}
	return nil
}

// Remove forgets sub (a subscriber that closed itself).
func (s *Subscribers[S]) Remove(sub S) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sub)
}

// Closed reports whether the set was closed.
func (s *Subscribers[S]) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// MarkClosed closes the set to new subscribers and returns those still in
// it, for the caller to close; first is false when it was already closed.
func (s *Subscribers[S]) MarkClosed() (open []S, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	s.closed = true
	open = make([]S, 0, len(s.m))
	for sub := range s.m {
		open = append(open, sub)
	}
	return open, true
}

// CloseAll is MarkClosed, then Close of every subscriber it returned,
// with their errors joined.
func (s *Subscribers[S]) CloseAll() (first bool, err error) {
	open, first := s.MarkClosed()
	errs := make([]error, 0, len(open))
	for _, sub := range open {
		errs = append(errs, sub.Close())
	}
	return first, errors.Join(errs...)
}
