// {{name}}: a Kiln validator, built with `kiln plugin build`.
package main

import "wit_component/kiln"

type plugin struct{}

func (plugin) Describe() kiln.Descriptor {
	return kiln.NewDescriptor("{{name}}", "{{description}}").
		Input("table", kiln.KindTable, "the table to check").
		Config("min_rows", "1", "the fewest rows allowed").
		Config("severity", "error", "severity of failed checks: error, warning or info")
}

func (plugin) Validate(in kiln.Inputs, cfg kiln.Config) ([]kiln.Check, error) {
	table, err := in.Table("table")
	if err != nil {
		return nil, err
	}
	minRows, err := cfg.Int("min_rows", 1)
	if err != nil {
		return nil, err
	}
	severity, err := cfg.Severity("severity", kiln.SeverityError)
	if err != nil {
		return nil, err
	}
	rows := table.NumRows()
	checks := []kiln.Check{
		kiln.NewCheck("rows", rows >= minRows, severity).
			WithObserved(float64(rows)).
			WithDetail("%d rows, at least %d required", rows, minRows),
	}
	for _, col := range table.Columns {
		missing := col.MissingCount()
		checks = append(checks, kiln.NewCheck("complete:"+col.Name, missing == 0, severity).
			WithObserved(float64(missing)).
			WithDetail("%d of %d values missing", missing, rows))
	}
	return checks, nil
}

func init() { kiln.ExportValidator(plugin{}) }
