package kiln

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	wit "wit_component/kiln_plugin_types"
)

// Glue connects the bindings wit-bindgen generates for a role's world to the plugin
// registered with ExportStep and friends. The export glue that `kiln plugin build` adds
// calls it; plugin code has no use for it.
var Glue glue

type glue struct{}

type (
	witResultValues = witTypes.Result[[]wit.NamedValue, wit.Error]
	witResultChecks = witTypes.Result[[]wit.Check, wit.Error]
	witResultUnit   = witTypes.Result[witTypes.Unit, wit.Error]
	witConfig       = []witTypes.Tuple2[string, string]
)

// SetTracking gives the SDK the host's tracking calls (worlds that import them).
func (glue) SetTracking(metric func(string, float64, uint64), param, tag func(string, string)) {
	tracking.metric, tracking.param, tracking.tag = metric, param, tag
}

func notRegistered(role, export string) string {
	return fmt.Sprintf("kiln: no %s registered; call kiln.%s from an init function", role, export)
}

// StepDescribe describes the registered step.
func (glue) StepDescribe() wit.Descriptor {
	if registered.step == nil {
		panic(notRegistered("step", "ExportStep"))
	}
	return toWITDescriptor(registered.step.Describe())
}

// StepRun runs the registered step.
func (glue) StepRun(inputs []wit.NamedValue, config witConfig) (result witResultValues) {
	defer recoverInto(&result, witTypes.Err[[]wit.NamedValue, wit.Error])
	if registered.step == nil {
		return witTypes.Err[[]wit.NamedValue](toWITError(Internal(notRegistered("step", "ExportStep"))))
	}
	out, err := registered.step.Run(fromWITInputs(inputs), fromWITConfig(config))
	if err == nil {
		err = checkOutputs(out)
	}
	if err != nil {
		return witTypes.Err[[]wit.NamedValue](toWITError(err))
	}
	return witTypes.Ok[[]wit.NamedValue, wit.Error](toWITValues(out))
}

// ValidatorDescribe describes the registered validator.
func (glue) ValidatorDescribe() wit.Descriptor {
	if registered.validator == nil {
		panic(notRegistered("validator", "ExportValidator"))
	}
	return toWITDescriptor(registered.validator.Describe())
}

// ValidatorValidate runs the registered validator.
func (glue) ValidatorValidate(inputs []wit.NamedValue, config witConfig) (result witResultChecks) {
	defer recoverInto(&result, witTypes.Err[[]wit.Check, wit.Error])
	if registered.validator == nil {
		return witTypes.Err[[]wit.Check](toWITError(Internal(notRegistered("validator", "ExportValidator"))))
	}
	checks, err := registered.validator.Validate(fromWITInputs(inputs), fromWITConfig(config))
	if err != nil {
		return witTypes.Err[[]wit.Check](toWITError(err))
	}
	out := make([]wit.Check, len(checks))
	for i, c := range checks {
		if c.Severity > SeverityError {
			return witTypes.Err[[]wit.Check](toWITError(Internal("check `%s` has an unknown severity %d", c.Name, uint8(c.Severity))))
		}
		observed := witTypes.None[float64]()
		if c.HasObserved {
			observed = witTypes.Some(c.Observed)
		}
		out[i] = wit.Check{Name: c.Name, Passed: c.Passed, Severity: wit.Severity(c.Severity),
			Observed: observed, Detail: c.Detail}
	}
	return witTypes.Ok[[]wit.Check, wit.Error](out)
}

// ModelRunnerDescribe describes the registered model runner.
func (glue) ModelRunnerDescribe() wit.Descriptor {
	if registered.modelRunner == nil {
		panic(notRegistered("model runner", "ExportModelRunner"))
	}
	return toWITDescriptor(registered.modelRunner.Describe())
}

// ModelLoad loads a model with the registered model runner.
func (glue) ModelLoad(artifact []byte, config witConfig) (model Model, failure *wit.Error) {
	defer func() {
		if r := recover(); r != nil {
			e := toWITError(panicError(r))
			model, failure = nil, &e
		}
	}()
	if registered.modelRunner == nil {
		e := toWITError(Internal(notRegistered("model runner", "ExportModelRunner")))
		return nil, &e
	}
	m, err := registered.modelRunner.Load(artifact, fromWITConfig(config))
	if err == nil && m == nil {
		err = Internal("Load returned no model and no error")
	}
	if err != nil {
		e := toWITError(err)
		return nil, &e
	}
	return m, nil
}

// ModelMetadata is a loaded model's metadata.
func (glue) ModelMetadata(m Model) (result wit.ModelMetadata) {
	defer func() {
		if r := recover(); r != nil {
			LogError("Metadata: %s", panicError(r).Message)
			result = wit.ModelMetadata{}
		}
	}()
	md := m.Metadata()
	props := make([]witTypes.Tuple2[string, string], len(md.Properties))
	for i, p := range md.Properties {
		props[i] = witTypes.Tuple2[string, string]{F0: p[0], F1: p[1]}
	}
	return wit.ModelMetadata{Inputs: toWITPorts(md.Inputs), Outputs: toWITPorts(md.Outputs), Properties: props}
}

// ModelPredict predicts with a loaded model.
func (glue) ModelPredict(m Model, inputs []wit.NamedValue) (result witResultValues) {
	defer recoverInto(&result, witTypes.Err[[]wit.NamedValue, wit.Error])
	out, err := m.Predict(fromWITInputs(inputs))
	if err == nil {
		err = checkOutputs(out)
	}
	if err != nil {
		return witTypes.Err[[]wit.NamedValue](toWITError(err))
	}
	return witTypes.Ok[[]wit.NamedValue, wit.Error](toWITValues(out))
}

// ModelDrop releases a model the host dropped.
func (glue) ModelDrop(m Model) {
	if c, ok := m.(interface{ Close() }); ok {
		defer func() { _ = recover() }()
		c.Close()
	}
}

// TrackerDescribe describes the registered tracker.
func (glue) TrackerDescribe() wit.Descriptor {
	if registered.tracker == nil {
		panic(notRegistered("tracker", "ExportTracker"))
	}
	return toWITDescriptor(registered.tracker.Describe())
}

// TrackerOnEvents hands a batch of events to the registered tracker.
func (glue) TrackerOnEvents(runID string, events []wit.Event, config witConfig) (result witResultUnit) {
	defer recoverInto(&result, witTypes.Err[witTypes.Unit, wit.Error])
	if registered.tracker == nil {
		return witTypes.Err[witTypes.Unit](toWITError(Internal(notRegistered("tracker", "ExportTracker"))))
	}
	evs := make([]Event, len(events))
	for i, e := range events {
		switch e.Tag() {
		case wit.Event_RunStarted:
			evs[i] = Event{Kind: EventRunStarted, Text: e.RunStarted()}
		case wit.Event_Param:
			p := e.Param()
			evs[i] = Event{Kind: EventParam, Key: p.F0, Value: p.F1}
		case wit.Event_Metric:
			m := e.Metric()
			evs[i] = Event{Kind: EventMetric, Metric: Metric{Key: m.Key, Value: m.Value, Step: m.Step, TimestampMs: m.TimestampMs}}
		case wit.Event_Tag:
			t := e.Tag_()
			evs[i] = Event{Kind: EventTag, Key: t.F0, Value: t.F1}
		case wit.Event_Artifact:
			evs[i] = Event{Kind: EventArtifact, Text: e.Artifact()}
		default:
			evs[i] = Event{Kind: EventRunFinished, Text: e.RunFinished()}
		}
	}
	if err := registered.tracker.OnEvents(runID, evs, fromWITConfig(config)); err != nil {
		return witTypes.Err[witTypes.Unit](toWITError(err))
	}
	return witTypes.Ok[witTypes.Unit, wit.Error](witTypes.Unit{})
}

// recoverInto turns a panic in a plugin function into an internal error result, so a bug
// reaches the host as a message rather than a trap.
func recoverInto[R any](result *R, fail func(wit.Error) R) {
	if r := recover(); r != nil {
		*result = fail(toWITError(panicError(r)))
	}
}

func panicError(r any) *Error {
	msg := fmt.Sprint(r)
	// The first frame under the runtime's panic machinery says where it happened.
	where := ""
	lines := strings.Split(string(debug.Stack()), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if strings.HasPrefix(lines[i], "panic(") && i+3 < len(lines) {
			where = strings.TrimSpace(lines[i+3])
			if j := strings.LastIndex(where, " +0x"); j > 0 {
				where = where[:j]
			}
			break
		}
	}
	if where != "" {
		return Internal("panic: %s (at %s)", msg, where)
	}
	return Internal("panic: %s", msg)
}

func toWITError(err error) wit.Error {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return wit.Error{Kind: wit.ErrorKind(e.Kind), Message: err.Error()}
	}
	return wit.Error{Kind: wit.ErrorKind_Internal, Message: err.Error()}
}

func fromWITConfig(config witConfig) Config {
	pairs := make([][2]string, len(config))
	for i, p := range config {
		pairs[i] = [2]string{p.F0, p.F1}
	}
	return Config{pairs: pairs}
}

func fromWITInputs(values []wit.NamedValue) Inputs {
	out := make([]NamedValue, len(values))
	for i, v := range values {
		out[i] = NamedValue{Name: v.Name, Value: fromWITValue(v.Value)}
	}
	return Inputs{values: out}
}

func fromWITValue(v wit.Value) Value {
	switch v.Tag() {
	case wit.Value_Tensor:
		t := v.Tensor()
		return TensorValue(Tensor{Dtype: Dtype(t.Dtype), Shape: t.Shape, Data: t.Data})
	case wit.Value_Table:
		t := v.Table()
		cols := make([]Column, len(t.Columns))
		for i, c := range t.Columns {
			col := Column{Name: c.Name, Type: ColumnType(c.Data.Tag())}
			switch c.Data.Tag() {
			case wit.ColumnData_Float64:
				col.Float64 = c.Data.Float64()
			case wit.ColumnData_Int64:
				col.Int64 = c.Data.Int64()
			case wit.ColumnData_Text:
				col.Text = c.Data.Text()
			case wit.ColumnData_Boolean:
				col.Boolean = c.Data.Boolean()
			}
			if c.Valid.IsSome() {
				col.Valid = c.Valid.Some()
				if col.Valid == nil {
					col.Valid = []bool{}
				}
			}
			cols[i] = col
		}
		return TableValue(Table{Columns: cols})
	case wit.Value_Scalar:
		return ScalarValue(v.Scalar())
	case wit.Value_Text:
		return TextValue(v.Text())
	case wit.Value_Bytes:
		return BytesValue(v.Bytes())
	default:
		return JSONValue(v.Json())
	}
}

// checkOutputs refuses malformed outputs (unknown kinds, a tensor whose data does not fit
// its shape, columns of unequal length) as an internal error naming the output.
func checkOutputs(values []NamedValue) error {
	for _, v := range values {
		switch {
		case v.Value.Kind > KindJSON:
			return Internal("output `%s` has kind %s, which is not a value kind", v.Name, v.Value.Kind)
		case v.Value.Kind == KindTensor:
			if err := v.Value.Tensor.Check(); err != nil {
				return Internal("output `%s`: %s", v.Name, err.Error())
			}
		case v.Value.Kind == KindTable:
			if err := v.Value.Table.Check(); err != nil {
				return Internal("output `%s`: %s", v.Name, err.Error())
			}
		}
	}
	return nil
}

func toWITValues(values []NamedValue) []wit.NamedValue {
	out := make([]wit.NamedValue, len(values))
	for i, v := range values {
		out[i] = wit.NamedValue{Name: v.Name, Value: toWITValue(v.Value)}
	}
	return out
}

func toWITValue(v Value) wit.Value {
	switch v.Kind {
	case KindTensor:
		t := v.Tensor
		return wit.MakeValueTensor(wit.Tensor{Dtype: wit.Dtype(t.Dtype), Shape: orEmpty(t.Shape), Data: orEmpty(t.Data)})
	case KindTable:
		cols := make([]wit.Column, len(v.Table.Columns))
		for i, c := range v.Table.Columns {
			var data wit.ColumnData
			switch c.Type {
			case ColumnFloat64:
				data = wit.MakeColumnDataFloat64(orEmpty(c.Float64))
			case ColumnInt64:
				data = wit.MakeColumnDataInt64(orEmpty(c.Int64))
			case ColumnText:
				data = wit.MakeColumnDataText(orEmpty(c.Text))
			default:
				data = wit.MakeColumnDataBoolean(orEmpty(c.Boolean))
			}
			valid := witTypes.None[[]bool]()
			if c.Valid != nil {
				valid = witTypes.Some(c.Valid)
			}
			cols[i] = wit.Column{Name: c.Name, Data: data, Valid: valid}
		}
		return wit.MakeValueTable(wit.Table{Columns: cols})
	case KindScalar:
		return wit.MakeValueScalar(v.Scalar)
	case KindBytes:
		return wit.MakeValueBytes(orEmpty(v.Bytes))
	case KindJSON:
		return wit.MakeValueJson(v.Text)
	default:
		return wit.MakeValueText(v.Text)
	}
}

// orEmpty keeps nil slices away from the bindings' lowering code.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func toWITPorts(ports []Port) []wit.Port {
	out := make([]wit.Port, len(ports))
	for i, p := range ports {
		out[i] = wit.Port{Name: p.Name, Kind: wit.ValueKind(p.Kind), Optional: p.Optional, Description: p.Description}
	}
	return out
}

func toWITDescriptor(d Descriptor) wit.Descriptor {
	keys := make([]wit.ConfigKey, len(d.ConfigKeys))
	for i, k := range d.ConfigKeys {
		def := witTypes.None[string]()
		if k.HasDefault {
			def = witTypes.Some(k.Default)
		}
		keys[i] = wit.ConfigKey{Name: k.Name, Required: k.Required, Default: def, Description: k.Description}
	}
	return wit.Descriptor{Name: d.Name, Description: d.Description, Inputs: toWITPorts(d.Inputs),
		Outputs: toWITPorts(d.Outputs), Config: keys}
}
