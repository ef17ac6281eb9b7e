// The tracker export glue of the Kiln Go SDK: `kiln plugin build` writes this file beside
// the bindings wit-bindgen generates for the tracker-plugin world. It hands every call to
// the tracker registered with kiln.ExportTracker.
package export_kiln_plugin_tracker

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/kiln"
	"wit_component/kiln_plugin_types"
)

func Describe() kiln_plugin_types.Descriptor {
	return kiln.Glue.TrackerDescribe()
}

func OnEvents(runID string, events []kiln_plugin_types.Event, config []witTypes.Tuple2[string, string]) witTypes.Result[witTypes.Unit, kiln_plugin_types.Error] {
	return kiln.Glue.TrackerOnEvents(runID, events, config)
}
