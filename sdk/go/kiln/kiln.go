// Package kiln is the Go SDK for Kiln plugins.
//
// A Kiln plugin is a WebAssembly component implementing one of four roles of the contract
// kiln:plugin@0.1.0: a step, a validator, a model runner or a tracker. A Go plugin is a
// main package that implements the role's interface and registers it from an init
// function; `kiln plugin build` generates the bindings, adds this package and the export
// glue, and builds the component.
//
//	package main
//
//	import "wit_component/kiln"
//
//	type scale struct{}
//
//	func (scale) Describe() kiln.Descriptor {
//		return kiln.NewDescriptor("scale", "Multiplies a tensor").
//			Input("x", kiln.KindTensor, "the tensor to scale").
//			Output("y", kiln.KindTensor, "x times the factor").
//			Config("factor", "2", "the multiplier")
//	}
//
//	func (scale) Run(in kiln.Inputs, cfg kiln.Config) (kiln.Outputs, error) {
//		factor, err := cfg.Float64("factor", 2)
//		if err != nil {
//			return nil, err
//		}
//		x, err := in.Tensor("x")
//		if err != nil {
//			return nil, err
//		}
//		values, err := x.Float64s()
//		if err != nil {
//			return nil, err
//		}
//		for i := range values {
//			values[i] *= factor
//		}
//		return kiln.Outputs{}.Tensor("y", kiln.Float64Tensor(x.Shape, values)), nil
//	}
//
//	func init() { kiln.ExportStep(scale{}) }
//
// Declare no main function: the generated bindings do.
//
// Errors: return a *kiln.Error (kiln.InvalidInput, kiln.InvalidConfig...) to report a
// failure of a given kind; any other error, and any panic, reaches the host as an
// internal error rather than a trap.
package kiln

import "fmt"

// Step is a pipeline step: named inputs and config in, named outputs out.
type Step interface {
	// Describe declares the step's inputs, outputs and config keys.
	Describe() Descriptor
	// Run runs the step once.
	Run(in Inputs, cfg Config) (Outputs, error)
}

// Validator checks its inputs and reports each check.
type Validator interface {
	// Describe declares the validator's inputs and config keys.
	Describe() Descriptor
	// Validate runs every check. A failed check is a result, not an error.
	Validate(in Inputs, cfg Config) ([]Check, error)
}

// ModelRunner loads a model once from its artifact, then predicts many times.
type ModelRunner interface {
	// Describe declares the runner's config keys.
	Describe() Descriptor
	// Load builds a model from its artifact bytes (the slice may be kept).
	Load(artifact []byte, cfg Config) (Model, error)
}

// Model is a loaded model. If it also has a Close() method, that is called when the host
// drops the model.
type Model interface {
	// Metadata is the model's input and output signature.
	Metadata() ModelMetadata
	// Predict predicts for a batch of inputs.
	Predict(in Inputs) (Outputs, error)
}

// Tracker receives the events of a run, e.g. to export them elsewhere.
type Tracker interface {
	// Describe declares the tracker's config keys.
	Describe() Descriptor
	// OnEvents receives a batch of events of one run.
	OnEvents(runID string, events []Event, cfg Config) error
}

var registered struct {
	step        Step
	validator   Validator
	modelRunner ModelRunner
	tracker     Tracker
}

// ExportStep makes s the plugin's step. Call it from an init function.
func ExportStep(s Step) { registered.step = s }

// ExportValidator makes v the plugin's validator. Call it from an init function.
func ExportValidator(v Validator) { registered.validator = v }

// ExportModelRunner makes r the plugin's model runner. Call it from an init function.
func ExportModelRunner(r ModelRunner) { registered.modelRunner = r }

// ExportTracker makes t the plugin's tracker. Call it from an init function.
func ExportTracker(t Tracker) { registered.tracker = t }

// Level is a log level.
type Level uint8

// The log levels, numbered as the WIT declares them.
const (
	LevelTrace Level = 0
	LevelDebug Level = 1
	LevelInfo  Level = 2
	LevelWarn  Level = 3
	LevelError Level = 4
)

// Log writes to the host's log, tagged with the plugin's name. With no args, format is
// used as is.
func Log(level Level, format string, args ...any) {
	hostLog(level, sprintf(format, args))
}

// LogTrace logs at trace level.
func LogTrace(format string, args ...any) { Log(LevelTrace, format, args...) }

// LogDebug logs at debug level.
func LogDebug(format string, args ...any) { Log(LevelDebug, format, args...) }

// LogInfo logs at info level.
func LogInfo(format string, args ...any) { Log(LevelInfo, format, args...) }

// LogWarn logs at warn level.
func LogWarn(format string, args ...any) { Log(LevelWarn, format, args...) }

// LogError logs at error level.
func LogError(format string, args ...any) { Log(LevelError, format, args...) }

var tracking struct {
	metric func(key string, value float64, step uint64)
	param  func(key, value string)
	tag    func(key, value string)
	warned bool
}

// noTracking stands in for the host's tracking calls where the world has none.
func noTracking(what string) {
	if native {
		hostLog(LevelInfo, "tracking: "+what)
		return
	}
	if !tracking.warned {
		tracking.warned = true
		LogDebug("tracking calls are ignored: only steps and validators may track")
	}
}

// LogMetric records a metric of the current run. Steps and validators only: in a model
// runner or a tracker it does nothing (natively, in tests, it prints to stderr).
func LogMetric(key string, value float64, step uint64) {
	if tracking.metric == nil {
		noTracking(fmt.Sprintf("metric %s = %g at step %d", key, value, step))
		return
	}
	tracking.metric(key, value, step)
}

// LogParam records a parameter of the current run (steps and validators only).
func LogParam(key, value string) {
	if tracking.param == nil {
		noTracking(fmt.Sprintf("param %s = %s", key, value))
		return
	}
	tracking.param(key, value)
}

// SetTag sets a tag on the current run (steps and validators only).
func SetTag(key, value string) {
	if tracking.tag == nil {
		noTracking(fmt.Sprintf("tag %s = %s", key, value))
		return
	}
	tracking.tag(key, value)
}
