// {{name}}: a Kiln model runner, built with `kiln plugin build`.
package main

import (
	"strconv"
	"strings"

	"wit_component/kiln"
)

type runner struct{}

func (runner) Describe() kiln.Descriptor {
	return kiln.NewDescriptor("{{name}}", "{{description}}").
		Config("scale", "1", "what the stored number is multiplied by")
}

// Load reads the artifact: here, a number as text. A real runner parses its weights.
func (runner) Load(artifact []byte, cfg kiln.Config) (kiln.Model, error) {
	scale, err := cfg.Float64("scale", 1)
	if err != nil {
		return nil, err
	}
	value, err := strconv.ParseFloat(strings.TrimSpace(string(artifact)), 64)
	if err != nil {
		return nil, kiln.InvalidInput("the artifact must hold a number as text")
	}
	return &model{value: value * scale}, nil
}

type model struct{ value float64 }

func (m *model) Metadata() kiln.ModelMetadata {
	return kiln.NewModelMetadata().
		Input("rows", kiln.KindTable, "one row per prediction").
		Output("prediction", kiln.KindTensor, "one float64 per row").
		Property("value", strconv.FormatFloat(m.value, 'g', -1, 64))
}

func (m *model) Predict(in kiln.Inputs) (kiln.Outputs, error) {
	rows, err := in.Table("rows")
	if err != nil {
		return nil, err
	}
	out := make([]float64, rows.NumRows())
	for i := range out {
		out[i] = m.value
	}
	return kiln.Outputs{}.Tensor("prediction", kiln.Float64Tensor(nil, out)), nil
}

func init() { kiln.ExportModelRunner(runner{}) }
