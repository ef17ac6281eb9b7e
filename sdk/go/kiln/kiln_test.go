package kiln

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	wit "wit_component/kiln_plugin_types"
)

func kindOf(t *testing.T, err error) ErrorKind {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not a *kiln.Error: %v", err)
	}
	return e.Kind
}

func TestTensorRoundTrips(t *testing.T) {
	x := Float64Tensor([]uint64{2, 2}, []float64{1, 2.5, -3, 4})
	got, err := x.Float64s()
	if err != nil || !reflect.DeepEqual(got, []float64{1, 2.5, -3, 4}) {
		t.Fatalf("Float64s = %v, %v", got, err)
	}
	m, err := x.Matrix()
	if err != nil || !reflect.DeepEqual(m, [][]float64{{1, 2.5}, {-3, 4}}) {
		t.Fatalf("Matrix = %v, %v", m, err)
	}
	f32, _ := Float32Tensor(nil, []float32{1.5, 2}).Float64s()
	if !reflect.DeepEqual(f32, []float64{1.5, 2}) {
		t.Fatalf("float32 as float64 = %v", f32)
	}
	ints, err := Int32Tensor(nil, []int32{-1, 7}).Int64s()
	if err != nil || !reflect.DeepEqual(ints, []int64{-1, 7}) {
		t.Fatalf("Int64s = %v, %v", ints, err)
	}
	if _, err := x.Int64s(); kindOf(t, err) != ErrorInvalidInput {
		t.Fatal("a float tensor is not integers")
	}
	b, _ := BoolTensor(nil, []bool{true, false}).Bools()
	if !reflect.DeepEqual(b, []bool{true, false}) {
		t.Fatalf("Bools = %v", b)
	}
	if Float64Tensor([]uint64{}, []float64{3}).Len() != 1 {
		t.Fatal("a scalar tensor has one element")
	}
}

func TestTensorCheck(t *testing.T) {
	bad := Tensor{Dtype: DtypeFloat64, Shape: []uint64{3}, Data: make([]byte, 16)}
	if _, err := bad.Float64s(); kindOf(t, err) != ErrorInvalidInput {
		t.Fatal("short data must be refused")
	}
	huge := Tensor{Dtype: DtypeFloat64, Shape: []uint64{math.MaxUint64, 2}}
	if err := huge.Check(); err == nil {
		t.Fatal("an overflowing shape must be refused")
	}
	if err := (Tensor{Dtype: 9}).Check(); err == nil {
		t.Fatal("an unknown dtype must be refused")
	}
	if _, err := (Tensor{Dtype: DtypeFloat64, Shape: []uint64{4}, Data: make([]byte, 32)}).Matrix(); err == nil {
		t.Fatal("a 1-D tensor is not a matrix")
	}
}

func TestColumns(t *testing.T) {
	c := Int64Column("n", []int64{3, 0, 5}).WithValid([]bool{true, false, true})
	v, err := c.Float64s()
	if err != nil || v[0] != 3 || !math.IsNaN(v[1]) || v[2] != 5 {
		t.Fatalf("Float64s = %v, %v", v, err)
	}
	if c.MissingCount() != 1 || c.IsValid(1) || !c.IsValid(2) || c.IsValid(3) {
		t.Fatal("validity")
	}
	if s := c.Strings(); !reflect.DeepEqual(s, []string{"3", "", "5"}) {
		t.Fatalf("Strings = %q", s)
	}
	if s, _ := Float64Column("f", []float64{5.1, 1, 1e-7}).Format(0); s != "5.1" {
		t.Fatalf("Format = %q", s)
	}
	codes, labels := TextColumn("s", []string{"b", "a", "b"}).Categories()
	if !reflect.DeepEqual(codes, []int{1, 0, 1}) || !reflect.DeepEqual(labels, []string{"a", "b"}) {
		t.Fatalf("Categories = %v %v", codes, labels)
	}
	if _, err := TextColumn("s", []string{"x"}).Float64s(); kindOf(t, err) != ErrorInvalidInput {
		t.Fatal("text is not numbers")
	}
	taken := c.TakeRows([]int{2, 0, 9})
	if !reflect.DeepEqual(taken.Int64, []int64{5, 3, 0}) || !reflect.DeepEqual(taken.Valid, []bool{true, true, false}) {
		t.Fatalf("TakeRows = %+v", taken)
	}
}

func TestTables(t *testing.T) {
	tab := NewTable(Float64Column("x", []float64{1, 2}), TextColumn("y", []string{"a", "b"}))
	if tab.NumRows() != 2 || tab.Check() != nil {
		t.Fatal("a good table")
	}
	if _, err := tab.Column("z"); err == nil || err.Error() != "no column `z`; the table has x, y" {
		t.Fatalf("missing column: %v", err)
	}
	names, cols, err := tab.NumericColumns(nil)
	if err != nil || !reflect.DeepEqual(names, []string{"x"}) || !reflect.DeepEqual(cols, [][]float64{{1, 2}}) {
		t.Fatalf("NumericColumns = %v %v %v", names, cols, err)
	}
	short := tab.With(Float64Column("z", []float64{1}))
	if kindOf(t, short.Check()) != ErrorInvalidInput {
		t.Fatal("ragged columns")
	}
	if kindOf(t, NewTable(Float64Column("x", nil), Float64Column("x", nil)).Check()) != ErrorInvalidInput {
		t.Fatal("repeated names")
	}
	if got := tab.Without("x").ColumnNames(); !reflect.DeepEqual(got, []string{"y"}) {
		t.Fatalf("Without = %v", got)
	}
}

func TestInputs(t *testing.T) {
	in := NewInputs(
		NamedValue{"t", TableValue(NewTable())},
		NamedValue{"s", ScalarValue(2)},
		NamedValue{"j", JSONValue(`{}`)},
	)
	if _, err := in.Table("t"); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Table("nope"); err == nil || err.Error() != "missing input `nope`" {
		t.Fatalf("missing input: %v", err)
	}
	if _, err := in.Tensor("s"); err == nil || err.Error() != "input `s` must be a tensor, got a scalar" {
		t.Fatalf("wrong kind: %v", err)
	}
	if s, err := in.Text("j"); err != nil || s != "{}" {
		t.Fatal("JSON reads as text")
	}
	bad := NewInputs(NamedValue{"t", TableValue(NewTable(Float64Column("a", []float64{1}).WithValid([]bool{})))})
	if _, err := bad.Table("t"); kindOf(t, err) != ErrorInvalidInput {
		t.Fatal("a bad validity mask")
	}
}

func TestConfig(t *testing.T) {
	c := NewConfig("n", "3", "x", " 0.5 ", "n", "4", "b", "yes", "l", "a, b,,c", "bad", "x1", "sev", "warning")
	if n, err := c.Int("n", 0); err != nil || n != 4 {
		t.Fatalf("the last value wins: %v %v", n, err)
	}
	if x, err := c.Float64("x", 0); err != nil || x != 0.5 {
		t.Fatalf("Float64 = %v %v", x, err)
	}
	if x, err := c.Float64("unset", 7); err != nil || x != 7 {
		t.Fatal("default")
	}
	if _, err := c.Float64("bad", 0); err == nil || kindOf(t, err) != ErrorInvalidConfig ||
		err.Error() != "config key `bad` = `x1`: not a number" {
		t.Fatalf("bad number: %v", err)
	}
	if b, err := c.Bool("b", false); err != nil || !b {
		t.Fatal("Bool")
	}
	if l := c.List("l"); !reflect.DeepEqual(l, []string{"a", "b", "c"}) {
		t.Fatalf("List = %q", l)
	}
	if s, err := c.Severity("sev", SeverityError); err != nil || s != SeverityWarning {
		t.Fatal("Severity")
	}
	if _, err := c.Severity("bad", SeverityError); kindOf(t, err) != ErrorInvalidConfig {
		t.Fatal("bad severity")
	}
	if _, err := c.Require("missing"); kindOf(t, err) != ErrorInvalidConfig {
		t.Fatal("Require")
	}
}

func TestBuilders(t *testing.T) {
	base := NewDescriptor("d", "desc").Input("a", KindTable, "")
	one := base.Output("x", KindTensor, "")
	two := base.Output("y", KindTensor, "")
	if one.Outputs[0].Name != "x" || two.Outputs[0].Name != "y" {
		t.Fatal("builders must not share slices")
	}
	d := toWITDescriptor(base.Config("k", "1", "").OptionalConfig("o", "").RequiredConfig("r", ""))
	if !d.Config[0].Default.IsSome() || d.Config[1].Default.IsSome() || !d.Config[2].Required {
		t.Fatalf("config keys = %+v", d.Config)
	}
	c := NewCheck("c", false, SeverityWarning).WithObserved(0.5).WithDetail("%d%%", 50)
	if !c.HasObserved || c.Observed != 0.5 || c.Detail != "50%" {
		t.Fatalf("check = %+v", c)
	}
	if NewCheck("c", true, SeverityInfo).WithDetail("100%").Detail != "100%" {
		t.Fatal("no args: the text as is")
	}
}

type panicky struct{}

func (panicky) Describe() Descriptor { return NewDescriptor("p", "") }
func (panicky) Run(Inputs, Config) (Outputs, error) {
	var m map[string]int
	m["boom"]++
	return nil, nil
}

type failing struct{ err error }

func (f failing) Describe() Descriptor                { return NewDescriptor("f", "") }
func (f failing) Run(Inputs, Config) (Outputs, error) { return nil, f.err }

type malformed struct{}

func (malformed) Describe() Descriptor { return NewDescriptor("m", "") }
func (malformed) Run(Inputs, Config) (Outputs, error) {
	return Outputs{}.Tensor("y", Tensor{Dtype: DtypeFloat64, Shape: []uint64{2}}), nil
}

func TestGlueErrors(t *testing.T) {
	defer func() { registered.step = nil }()
	registered.step = nil
	if r := Glue.StepRun(nil, nil); !r.IsErr() || r.Err().Kind != wit.ErrorKind_Internal {
		t.Fatal("no step registered")
	}
	ExportStep(panicky{})
	r := Glue.StepRun(nil, nil)
	if !r.IsErr() || r.Err().Kind != wit.ErrorKind_Internal {
		t.Fatal("a panic is an internal error")
	}
	t.Log(r.Err().Message)
	ExportStep(failing{fmt.Errorf("reading: %w", InvalidInput("bad row %d", 3))})
	if r := Glue.StepRun(nil, nil); r.Err().Kind != wit.ErrorKind_InvalidInput || r.Err().Message != "reading: bad row 3" {
		t.Fatalf("wrapped error = %+v", r.Err())
	}
	ExportStep(failing{errors.New("plain")})
	if r := Glue.StepRun(nil, nil); r.Err().Kind != wit.ErrorKind_Internal {
		t.Fatal("a plain error is internal")
	}
	ExportStep(malformed{})
	if r := Glue.StepRun(nil, nil); !r.IsErr() || r.Err().Kind != wit.ErrorKind_Internal {
		t.Fatal("a malformed output is refused")
	}
}

func TestValueConversion(t *testing.T) {
	tab := NewTable(
		Float64Column("f", []float64{1, 2}).WithValid([]bool{true, false}),
		Int64Column("i", []int64{1, 2}),
		TextColumn("t", []string{"a", "b"}),
		BoolColumn("b", []bool{true, false}),
	)
	values := Outputs{}.Table("tab", tab).Tensor("x", Int64Tensor(nil, []int64{5})).Scalar("s", 1).
		Text("t", "hi").JSON("j", "[]").Bytes("by", []byte{1})
	back := fromWITInputs(toWITValues(values))
	if !reflect.DeepEqual(back.All(), []NamedValue(values)) {
		t.Fatalf("round trip:\n%+v\n%+v", back.All(), values)
	}
}
