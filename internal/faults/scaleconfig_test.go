package faults

// scaleConfig sizes the suite; see scale_test.go and scale_long_test.go.
type scaleConfig struct {
	killEvents    int      // events fired in a kill test
	kills         int      // kill -9 and restart cycles in the same-name test
	killEvery     int      // events a listener handles before it is killed
	restartEvents int      // events fired in a broker restart test
	brokerSignals []string // how the broker is stopped, one restart each
	long          bool
}
