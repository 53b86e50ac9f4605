package transports_test

import (
	"errors"
	"fmt"

	"github.com/busline/busline/transports"
)

// Print URLs through RedactURL: the password and secret query parameters
// are masked, and a URL that does not parse keeps only its scheme.
func ExampleRedactURL() {
	fmt.Println(transports.RedactURL("amqp://guest:s3cret@rabbit:5672/"))
	fmt.Println(transports.RedactURL("redis://sentinel:26379/0?master_name=m&password=s3cret&sentinel_password=s3cret"))
	fmt.Println(transports.RedactURL("redis://u:s3 cret@host/0"))
	// Output:
	// amqp://guest:xxxxx@rabbit:5672/
	// redis://sentinel:26379/0?master_name=m&password=xxxxx&sentinel_password=xxxxx
	// redis://xxxxx
}

// RedactError masks what a client library's error repeats of a URL.
func ExampleRedactError() {
	err := errors.New("dial failed for user app with password s3cret")
	fmt.Println(transports.RedactError(err, "postgres://app:s3cret@db/app"))
	// Output: dial failed for user app with password xxxxx
}
