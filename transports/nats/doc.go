// Package nats is the NATS JetStream transport of Busline. Importing it
// registers the nats:// and tls:// URL schemes.
package nats
