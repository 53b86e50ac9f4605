package dashboard

import (
	"strings"

	"github.com/busline/busline/transports"
)

// shownName returns the name the page shows for Options.Name: as given,
// except that a URL loses its secrets through the project's redaction
// (transports.RedactURL): the userinfo's password, or a user name given
// alone, and the values of secret-bearing query parameters.
func shownName(name string) string {
	if !strings.Contains(name, "://") && !strings.Contains(name, "@") {
		return name
	}
	return transports.RedactURL(name)
}
