// Package schema makes events contracts: the JSON Schema of an event's
// payload derived from its Go type, a version hash of it, the records a bus
// publishes on the broker (which service fires or listens to which event
// with which schema), validation of payloads, and the compatibility check
// between the schema a firer sends and the schema a listener requires.
//
// The bus package uses it (bus.Schema, Config.ValidatePayloads, the records
// published at Start) and so does the busline command (busline schema,
// busline fire). docs/schemas.md describes the rules.
package schema
