// {{name}}: a Kiln tracker, built with `kiln plugin build`.
package main

import "wit_component/kiln"

type plugin struct{}

func (plugin) Describe() kiln.Descriptor {
	return kiln.NewDescriptor("{{name}}", "{{description}}").
		OptionalConfig("prefix", "text put before every line logged")
}

func (plugin) OnEvents(runID string, events []kiln.Event, cfg kiln.Config) error {
	prefix := cfg.Text("prefix", "")
	for _, e := range events {
		switch e.Kind {
		case kiln.EventMetric:
			kiln.LogInfo("%s%s: %s = %g at step %d", prefix, runID, e.Metric.Key, e.Metric.Value, e.Metric.Step)
		case kiln.EventParam, kiln.EventTag:
			kiln.LogInfo("%s%s: %s %s = %s", prefix, runID, e.Kind, e.Key, e.Value)
		default:
			kiln.LogInfo("%s%s: %s %s", prefix, runID, e.Kind, e.Text)
		}
	}
	return nil
}

func init() { kiln.ExportTracker(plugin{}) }
