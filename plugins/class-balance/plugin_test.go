package main

// Run with `go test .` in target/kiln/src after `kiln plugin build` (see sdk/go/README.md).

import (
	"errors"
	"strings"
	"testing"

	"wit_component/kiln"
)

func validate(t *testing.T, table kiln.Table, config ...string) map[string]kiln.Check {
	t.Helper()
	in := kiln.NewInputs(kiln.NamedValue{Name: "table", Value: kiln.TableValue(table)})
	checks, err := classBalance{}.Validate(in, kiln.NewConfig(config...))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]kiln.Check{}
	for _, c := range checks {
		byName[c.Name] = c
	}
	return byName
}

func failure(t *testing.T, in kiln.Inputs, config ...string) *kiln.Error {
	t.Helper()
	_, err := classBalance{}.Validate(in, kiln.NewConfig(config...))
	var e *kiln.Error
	if !errors.As(err, &e) {
		t.Fatalf("want a kiln error, got %v", err)
	}
	return e
}

func repeat(label string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = label
	}
	return out
}

func TestBalanced(t *testing.T) {
	species := append(append(repeat("setosa", 50), repeat("versicolor", 50)...), repeat("virginica", 50)...)
	c := validate(t, kiln.NewTable(kiln.TextColumn("species", species)), "target", "species")
	for _, name := range []string{"classes", "min_fraction", "max_ratio", "missing_target"} {
		if !c[name].Passed {
			t.Errorf("%s failed: %s", name, c[name].Detail)
		}
	}
	if c["classes"].Observed != 3 || !strings.Contains(c["classes"].Detail, "`setosa` 50") {
		t.Errorf("classes: %+v", c["classes"])
	}
}

func TestImbalanced(t *testing.T) {
	labels := append(repeat("1", 99), "0")
	ints := make([]int64, len(labels))
	for i, l := range labels {
		if l == "1" {
			ints[i] = 1
		}
	}
	c := validate(t, kiln.NewTable(kiln.Int64Column("y", ints)), "target", "y", "severity", "warning")
	if c["min_fraction"].Passed || c["min_fraction"].Observed != 0.01 || c["min_fraction"].Severity != kiln.SeverityWarning {
		t.Errorf("min_fraction: %+v", c["min_fraction"])
	}
	if c["max_ratio"].Passed || c["max_ratio"].Observed != 99 || !strings.Contains(c["max_ratio"].Detail, "smallest `0` has 1") {
		t.Errorf("max_ratio: %+v", c["max_ratio"])
	}
}

func TestMissingAndEmpty(t *testing.T) {
	col := kiln.BoolColumn("y", []bool{true, false, true, false}).WithValid([]bool{true, true, false, true})
	c := validate(t, kiln.NewTable(col), "target", "y")
	if c["missing_target"].Passed || c["missing_target"].Observed != 1 {
		t.Errorf("missing_target: %+v", c["missing_target"])
	}
	empty := validate(t, kiln.NewTable(kiln.TextColumn("y", nil)), "target", "y")
	if empty["classes"].Passed || empty["max_ratio"].Passed || empty["classes"].Observed != 0 {
		t.Errorf("empty: %+v", empty)
	}
}

func TestErrors(t *testing.T) {
	table := kiln.NamedValue{Name: "table", Value: kiln.TableValue(kiln.NewTable(kiln.Float64Column("x", []float64{1})))}
	in := kiln.NewInputs(table)
	cases := []struct {
		in     kiln.Inputs
		config []string
		kind   kiln.ErrorKind
	}{
		{in, nil, kiln.ErrorInvalidConfig},
		{in, []string{"target", "x", "min_fraction", "2"}, kiln.ErrorInvalidConfig},
		{in, []string{"target", "x", "max_ratio", "0.5"}, kiln.ErrorInvalidConfig},
		{in, []string{"target", "x", "min_classes", "two"}, kiln.ErrorInvalidConfig},
		{in, []string{"target", "x", "severity", "fatal"}, kiln.ErrorInvalidConfig},
		{in, []string{"target", "x"}, kiln.ErrorInvalidInput},
		{in, []string{"target", "nope"}, kiln.ErrorInvalidInput},
		{kiln.NewInputs(), []string{"target", "x"}, kiln.ErrorInvalidInput},
		{kiln.NewInputs(kiln.NamedValue{Name: "table", Value: kiln.ScalarValue(1)}), []string{"target", "x"}, kiln.ErrorInvalidInput},
	}
	for i, tc := range cases {
		if e := failure(t, tc.in, tc.config...); e.Kind != tc.kind {
			t.Errorf("case %d: %s: %s", i, e.Kind, e.Message)
		}
	}
}
