package transports

import (
	"regexp"
	"strings"
)

// The naming rule every transport shares for services, listeners,
// processes and so for consumer groups ("{service}-{listener}"); the bus
// checks names with it (bus.ValidateName), tools that take a group name
// with CheckGroupName.

// namePattern: letters, digits, '.', '_' and '-', starting with a letter
// or digit.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// NameChars reports whether name holds only the characters a service,
// listener or process name may hold, starting with a letter or digit.
func NameChars(name string) bool { return namePattern.MatchString(name) }

// ReservedInfix returns the part of name that transports use inside the
// names of their own queues and keys (".retry." of AMQP delay queues,
// ".records." of the records), or "" when it holds none. No name may
// hold one.
func ReservedInfix(name string) string {
	for _, s := range [...]string{".retry.", ".records."} {
		if strings.Contains(name, s) {
			return s
		}
	}
	return ""
}

// ReservedSuffix returns the ending transports give a group's own queues
// (".dead" of its dead letters) when name ends with it, else "". No
// listener, and so no group, may end with one.
func ReservedSuffix(name string) string {
	if strings.HasSuffix(name, ".dead") {
		return ".dead"
	}
	return ""
}
