// The step export glue of the Kiln Go SDK: `kiln plugin build` writes this file beside the
// bindings wit-bindgen generates for the step-plugin world. It hands every call to the
// step registered with kiln.ExportStep.
package export_kiln_plugin_step

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/kiln"
	"wit_component/kiln_plugin_types"
)

func Describe() kiln_plugin_types.Descriptor {
	return kiln.Glue.StepDescribe()
}

func Run(inputs []kiln_plugin_types.NamedValue, config []witTypes.Tuple2[string, string]) witTypes.Result[[]kiln_plugin_types.NamedValue, kiln_plugin_types.Error] {
	return kiln.Glue.StepRun(inputs, config)
}
