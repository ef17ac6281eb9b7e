//go:build wasm

// The step-plugin world imports the host's tracking calls: hand them to the SDK. (Outside
// a component, as in `go test`, the SDK prints them instead.)
package export_kiln_plugin_step

import (
	"wit_component/kiln"
	"wit_component/kiln_plugin_tracking"
)

func init() {
	kiln.Glue.SetTracking(kiln_plugin_tracking.LogMetric, kiln_plugin_tracking.LogParam, kiln_plugin_tracking.SetTag)
}
