package kiln

// Port is a declared input or output.
type Port struct {
	Name        string
	Kind        Kind
	Optional    bool
	Description string
}

// ConfigKey is a declared config key. Default is meaningful only when HasDefault is set.
type ConfigKey struct {
	Name        string
	Required    bool
	HasDefault  bool
	Default     string
	Description string
}

// Descriptor is what a plugin says about itself, so the host can check wiring before it
// runs anything. Declare every input, output and config key:
//
//	kiln.NewDescriptor("scale", "Multiplies a tensor").
//		Input("x", kiln.KindTensor, "the tensor").
//		Output("y", kiln.KindTensor, "x times the factor").
//		Config("factor", "2", "the multiplier")
type Descriptor struct {
	Name        string
	Description string
	Inputs      []Port
	Outputs     []Port
	ConfigKeys  []ConfigKey
}

// NewDescriptor is a descriptor with no ports and no config keys yet.
func NewDescriptor(name, description string) Descriptor {
	return Descriptor{Name: name, Description: description}
}

// Input declares a required input.
func (d Descriptor) Input(name string, kind Kind, description string) Descriptor {
	d.Inputs = append(clip(d.Inputs), Port{name, kind, false, description})
	return d
}

// OptionalInput declares an input the plugin can do without.
func (d Descriptor) OptionalInput(name string, kind Kind, description string) Descriptor {
	d.Inputs = append(clip(d.Inputs), Port{name, kind, true, description})
	return d
}

// Output declares an output.
func (d Descriptor) Output(name string, kind Kind, description string) Descriptor {
	d.Outputs = append(clip(d.Outputs), Port{name, kind, false, description})
	return d
}

// Config declares a config key with its default.
func (d Descriptor) Config(name, def, description string) Descriptor {
	d.ConfigKeys = append(clip(d.ConfigKeys), ConfigKey{Name: name, HasDefault: true, Default: def, Description: description})
	return d
}

// OptionalConfig declares a config key with no default that need not be set.
func (d Descriptor) OptionalConfig(name, description string) Descriptor {
	d.ConfigKeys = append(clip(d.ConfigKeys), ConfigKey{Name: name, Description: description})
	return d
}

// RequiredConfig declares a config key that must be set.
func (d Descriptor) RequiredConfig(name, description string) Descriptor {
	d.ConfigKeys = append(clip(d.ConfigKeys), ConfigKey{Name: name, Required: true, Description: description})
	return d
}

// clip makes append copy, so a builder never writes into a slice another value shares.
func clip[T any](s []T) []T {
	return s[:len(s):len(s)]
}

// Severity is how much a failed validator check matters. A failed error check blocks what
// depends on it.
type Severity uint8

// The severities, numbered as the WIT declares them.
const (
	SeverityInfo    Severity = 0
	SeverityWarning Severity = 1
	SeverityError   Severity = 2
)

// String is the severity's name, as the WIT spells it.
func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	default:
		return "error"
	}
}

// Check is one check of a validator's report. A failed check is a result, not an error.
//
//	kiln.NewCheck("rows", rows > 0, kiln.SeverityError).WithObserved(float64(rows)).WithDetail("%d rows", rows)
type Check struct {
	Name     string
	Passed   bool
	Severity Severity
	// Observed is the figure the check looked at, when HasObserved is set.
	Observed    float64
	HasObserved bool
	Detail      string
}

// NewCheck is a check with no observed figure and no detail yet.
func NewCheck(name string, passed bool, severity Severity) Check {
	return Check{Name: name, Passed: passed, Severity: severity}
}

// WithObserved records the figure the check looked at.
func (c Check) WithObserved(x float64) Check {
	c.Observed, c.HasObserved = x, true
	return c
}

// WithDetail explains the outcome. With no args, format is used as is.
func (c Check) WithDetail(format string, args ...any) Check {
	c.Detail = sprintf(format, args)
	return c
}

// ModelMetadata is a loaded model's input and output signature, and free-form facts about it.
type ModelMetadata struct {
	Inputs     []Port
	Outputs    []Port
	Properties [][2]string
}

// NewModelMetadata is empty metadata.
func NewModelMetadata() ModelMetadata {
	return ModelMetadata{}
}

// Input declares a model input.
func (m ModelMetadata) Input(name string, kind Kind, description string) ModelMetadata {
	m.Inputs = append(clip(m.Inputs), Port{name, kind, false, description})
	return m
}

// OptionalInput declares a model input it can do without.
func (m ModelMetadata) OptionalInput(name string, kind Kind, description string) ModelMetadata {
	m.Inputs = append(clip(m.Inputs), Port{name, kind, true, description})
	return m
}

// Output declares a model output.
func (m ModelMetadata) Output(name string, kind Kind, description string) ModelMetadata {
	m.Outputs = append(clip(m.Outputs), Port{name, kind, false, description})
	return m
}

// Property adds a free-form fact.
func (m ModelMetadata) Property(key, value string) ModelMetadata {
	m.Properties = append(clip(m.Properties), [2]string{key, value})
	return m
}

// Metric is a metric logged in a run.
type Metric struct {
	Key         string
	Value       float64
	Step        uint64
	TimestampMs uint64
}

// EventKind says what happened in a run.
type EventKind uint8

// The event kinds, numbered as the WIT declares them.
const (
	EventRunStarted  EventKind = 0
	EventParam       EventKind = 1
	EventMetric      EventKind = 2
	EventTag         EventKind = 3
	EventArtifact    EventKind = 4
	EventRunFinished EventKind = 5
)

// String is the event kind's name, as the WIT spells it.
func (k EventKind) String() string {
	switch k {
	case EventRunStarted:
		return "run-started"
	case EventParam:
		return "param"
	case EventMetric:
		return "metric"
	case EventTag:
		return "tag"
	case EventArtifact:
		return "artifact"
	default:
		return "run-finished"
	}
}

// Event is what happened in a run, as a tracker receives it. Text holds the payload of
// run-started, artifact and run-finished; Key and Value that of param and tag; Metric
// that of metric.
type Event struct {
	Kind   EventKind
	Text   string
	Key    string
	Value  string
	Metric Metric
}
