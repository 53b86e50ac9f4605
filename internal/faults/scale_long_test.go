//go:build faultslong

package faults

// scale sizes the long run (-tags faultslong): more events, more kills,
// and the broker restarted both by SIGKILL and by SIGTERM.
var scale = scaleConfig{
	killEvents:    60000,
	kills:         10,
	killEvery:     4000,
	restartEvents: 30000,
	brokerSignals: []string{"SIGKILL", "SIGTERM", "SIGKILL"},
	long:          true,
}
