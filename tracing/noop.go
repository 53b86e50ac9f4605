package tracing

import (
	"reflect"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// globalPkg is the package of the provider otel.GetTracerProvider returns
// while no program has called otel.SetTracerProvider.
const globalPkg = "go.opentelemetry.io/otel/internal/global"

// spanGate tells whether a span started now could record. Starting a span
// on a provider that cannot record still costs allocations (the context
// and the span value) on every Fire and every delivery; when the gate says
// no, Busline starts no span at all and only propagates the context it
// was given, which is what a non-recording span would have done.
type spanGate struct {
	never       bool                 // the provider is the no-op one
	unsetGlobal trace.TracerProvider // the global delegate, while nobody set a provider
}

func newSpanGate(tp trace.TracerProvider) spanGate {
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return spanGate{never: true}
	}
	if t := reflect.TypeOf(tp); t.Kind() == reflect.Pointer && t.Elem().PkgPath() == globalPkg {
		// The delegate otel.GetTracerProvider returns until a provider is
		// set; from then on it returns that provider instead.
		return spanGate{unsetGlobal: tp}
	}
	return spanGate{}
}

// off reports that spans cannot record: the no-op provider, or the global
// one while otel.SetTracerProvider has not been called. (The global
// delegate can also hand out spans of an attached eBPF auto-instrumentation
// agent; Busline's spans are not among them until a provider is set.)
func (g spanGate) off() bool {
	if g.never {
		return true
	}
	return g.unsetGlobal != nil && otel.GetTracerProvider() == g.unsetGlobal
}
