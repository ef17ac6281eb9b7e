package kiln

import "fmt"

// Kind is the kind of a value, as a port declares it.
type Kind uint8

// The value kinds, numbered as the WIT declares them. KindAny is only for ports.
const (
	KindTensor Kind = 0
	KindTable  Kind = 1
	KindScalar Kind = 2
	KindText   Kind = 3
	KindBytes  Kind = 4
	KindJSON   Kind = 5
	KindAny    Kind = 6
)

// String is the kind's name, as the WIT spells it.
func (k Kind) String() string {
	switch k {
	case KindTensor:
		return "tensor"
	case KindTable:
		return "table"
	case KindScalar:
		return "scalar"
	case KindText:
		return "text"
	case KindBytes:
		return "bytes"
	case KindJSON:
		return "json"
	case KindAny:
		return "any"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Value is anything one plugin hands another: the field matching Kind holds it (Text
// holds both text and JSON documents). Build one with TensorValue, TableValue and friends.
type Value struct {
	Kind   Kind
	Tensor Tensor
	Table  Table
	Scalar float64
	Text   string
	Bytes  []byte
}

// TensorValue wraps a tensor.
func TensorValue(t Tensor) Value { return Value{Kind: KindTensor, Tensor: t} }

// TableValue wraps a table.
func TableValue(t Table) Value { return Value{Kind: KindTable, Table: t} }

// ScalarValue wraps a number.
func ScalarValue(x float64) Value { return Value{Kind: KindScalar, Scalar: x} }

// TextValue wraps a string.
func TextValue(s string) Value { return Value{Kind: KindText, Text: s} }

// JSONValue wraps a JSON document, given as text.
func JSONValue(doc string) Value { return Value{Kind: KindJSON, Text: doc} }

// BytesValue wraps bytes.
func BytesValue(b []byte) Value { return Value{Kind: KindBytes, Bytes: b} }

// NamedValue is a value with the name of its port.
type NamedValue struct {
	Name  string
	Value Value
}

// Inputs are the named inputs a plugin was called with. The typed getters turn a missing
// input or one of the wrong kind into an invalid-input error naming it.
type Inputs struct {
	values []NamedValue
}

// NewInputs wraps named values, e.g. to call a plugin's functions in a test.
func NewInputs(values ...NamedValue) Inputs {
	return Inputs{values: values}
}

// Names are the names of the inputs given, in order.
func (in Inputs) Names() []string {
	out := make([]string, len(in.values))
	for i, v := range in.values {
		out[i] = v.Name
	}
	return out
}

// All are the inputs given, in order.
func (in Inputs) All() []NamedValue {
	return in.values
}

// Get is the input called name, if it was given.
func (in Inputs) Get(name string) (Value, bool) {
	for _, v := range in.values {
		if v.Name == name {
			return v.Value, true
		}
	}
	return Value{}, false
}

// Has reports whether the input called name was given.
func (in Inputs) Has(name string) bool {
	_, ok := in.Get(name)
	return ok
}

// Value is the input called name, of any kind; a missing input is an invalid-input error.
func (in Inputs) Value(name string) (Value, error) {
	v, ok := in.Get(name)
	if !ok {
		return Value{}, InvalidInput("missing input `%s`", name)
	}
	return v, nil
}

func (in Inputs) kind(name string, want Kind) (Value, error) {
	v, err := in.Value(name)
	if err != nil {
		return v, err
	}
	if v.Kind != want && !(want == KindText && v.Kind == KindJSON) {
		return v, InvalidInput("input `%s` must be a %s, got a %s", name, want, v.Kind)
	}
	return v, nil
}

// Table is the table input called name, checked (see Table.Check).
func (in Inputs) Table(name string) (Table, error) {
	v, err := in.kind(name, KindTable)
	if err != nil {
		return Table{}, err
	}
	if err := v.Table.Check(); err != nil {
		return Table{}, InvalidInput("input `%s`: %s", name, err.Error())
	}
	return v.Table, nil
}

// Tensor is the tensor input called name, checked (see Tensor.Check).
func (in Inputs) Tensor(name string) (Tensor, error) {
	v, err := in.kind(name, KindTensor)
	if err != nil {
		return Tensor{}, err
	}
	if err := v.Tensor.Check(); err != nil {
		return Tensor{}, InvalidInput("input `%s`: %s", name, err.Error())
	}
	return v.Tensor, nil
}

// Scalar is the scalar input called name.
func (in Inputs) Scalar(name string) (float64, error) {
	v, err := in.kind(name, KindScalar)
	return v.Scalar, err
}

// Text is the text (or JSON) input called name.
func (in Inputs) Text(name string) (string, error) {
	v, err := in.kind(name, KindText)
	return v.Text, err
}

// JSON is the JSON input called name, as text.
func (in Inputs) JSON(name string) (string, error) {
	v, err := in.kind(name, KindJSON)
	return v.Text, err
}

// Bytes is the bytes input called name.
func (in Inputs) Bytes(name string) ([]byte, error) {
	v, err := in.kind(name, KindBytes)
	return v.Bytes, err
}

// Outputs are the named outputs a plugin returns. Each method returns the outputs with
// one more, like append: kiln.Outputs{}.Table("table", t).Scalar("rows", n).
type Outputs []NamedValue

// Add appends a value of any kind.
func (o Outputs) Add(name string, v Value) Outputs {
	return append(o, NamedValue{Name: name, Value: v})
}

// Tensor appends a tensor.
func (o Outputs) Tensor(name string, t Tensor) Outputs { return o.Add(name, TensorValue(t)) }

// Table appends a table.
func (o Outputs) Table(name string, t Table) Outputs { return o.Add(name, TableValue(t)) }

// Scalar appends a number.
func (o Outputs) Scalar(name string, x float64) Outputs { return o.Add(name, ScalarValue(x)) }

// Text appends a string.
func (o Outputs) Text(name string, s string) Outputs { return o.Add(name, TextValue(s)) }

// JSON appends a JSON document, given as text.
func (o Outputs) JSON(name string, doc string) Outputs { return o.Add(name, JSONValue(doc)) }

// Bytes appends bytes.
func (o Outputs) Bytes(name string, b []byte) Outputs { return o.Add(name, BytesValue(b)) }
