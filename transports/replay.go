package transports

// MetaReplayGroup is the metadata key (a header on NATS, a metadata field
// on Redis) of an event replayed from a dead-letter destination onto the
// event's stream: its value names the one consumer group that handles the
// copy; the other groups acknowledge it without handing it out. Tools
// (busline tail) show such a copy as a replay. RabbitMQ replays into the
// group's own queue and sets no such key.
const MetaReplayGroup = "busline-replay-group"
