// Package all imports every transport driver shipped with Busline, so that
// programs that pick the transport by configuration accept every scheme:
//
//	import _ "github.com/busline/busline/transports/all"
package all

import (
	_ "github.com/busline/busline/transports/amqp"        // amqp://, amqps://
	_ "github.com/busline/busline/transports/memory"      // memory://
	_ "github.com/busline/busline/transports/nats"        // nats://, tls://
	_ "github.com/busline/busline/transports/redisstream" // redis://, rediss://
)
