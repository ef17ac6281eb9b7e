// {{name}}: a Kiln step, built with `kiln plugin build`.
package main

import "wit_component/kiln"

type plugin struct{}

func (plugin) Describe() kiln.Descriptor {
	return kiln.NewDescriptor("{{name}}", "{{description}}").
		Input("table", kiln.KindTable, "the table to transform").
		Output("table", kiln.KindTable, "the table, its numeric columns scaled").
		Config("factor", "1", "what every numeric value is multiplied by")
}

func (plugin) Run(in kiln.Inputs, cfg kiln.Config) (kiln.Outputs, error) {
	factor, err := cfg.Float64("factor", 1)
	if err != nil {
		return nil, err
	}
	table, err := in.Table("table")
	if err != nil {
		return nil, err
	}
	out := table
	for _, col := range table.Columns {
		if !col.IsNumeric() {
			continue
		}
		values, err := col.Float64s() // missing values are NaN
		if err != nil {
			return nil, err
		}
		for i := range values {
			values[i] *= factor
		}
		out = out.With(kiln.Float64Column(col.Name, values).WithValid(col.Valid))
	}
	kiln.LogMetric("rows", float64(table.NumRows()), 0)
	return kiln.Outputs{}.Table("table", out), nil
}

func init() { kiln.ExportStep(plugin{}) }
