//go:build !faultslong

package faults

// scale sizes the default run: about a minute of the suite on two cores.
// Build with -tags faultslong for the long variants.
var scale = scaleConfig{
	killEvents:    4000,
	kills:         2,
	killEvery:     600,
	restartEvents: 3000,
	brokerSignals: []string{"SIGKILL"},
	long:          false,
}
