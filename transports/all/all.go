// Package all imports every transport driver and every idempotency store
// shipped with Busline, so that programs that pick them by configuration
// accept every URL scheme the documentation shows:
//
//	import _ "github.com/busline/busline/transports/all"
//
// Transports: memory://, redis://, rediss://, amqp://, amqps://.
// Idempotency stores (bus.Config.Idempotency, BUSLINE_IDEMPOTENCY):
// memory://, redis://, rediss://, postgres://, postgresql://.
//
// Import single drivers instead to keep a program's dependencies small
// (pgstore brings the pgx driver, for example).
package all

import (
	_ "github.com/busline/busline/idempotency/pgstore"    // postgres://, postgresql:// stores
	_ "github.com/busline/busline/idempotency/redisstore" // redis://, rediss:// stores
	_ "github.com/busline/busline/transports/amqp"        // amqp://, amqps://
	_ "github.com/busline/busline/transports/memory"      // memory://
	_ "github.com/busline/busline/transports/nats"        // nats://, tls://
	_ "github.com/busline/busline/transports/redisstream" // redis://, rediss://
)
