package transports

// ConnectionDropper is the capability of dropping a transport's network
// connections at once. The bus calls DropConnections when its Close
// outlasts bus.CloseBudget, typically on a broker that stopped answering
// but keeps its connections open (a stalled or overloaded server, a
// network that drops packets without resetting), where each of Close's
// steps would otherwise wait out the client's own timeouts in turn.
//
// After DropConnections every call still waiting on the broker fails at
// once and later calls fail without waiting; Close still releases what
// the transport owns. What the broker was not told in time stays as it
// is on the broker: acknowledgements not sent leave their events pending,
// so they are delivered again (at-least-once), and a process's liveness
// record ends with its expiry. A transport built on a client or
// connection the caller supplied leaves that client alone: it is the
// caller's to close. DropConnections reports whether it dropped any
// connection: false when every one it would wait on is the caller's. It
// may be called concurrently with Close and more than once.
type ConnectionDropper interface {
	DropConnections() (dropped bool)
}
