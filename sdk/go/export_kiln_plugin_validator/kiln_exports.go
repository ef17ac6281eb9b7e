// The validator export glue of the Kiln Go SDK: `kiln plugin build` writes this file beside
// the bindings wit-bindgen generates for the validator-plugin world. It hands every call to
// the validator registered with kiln.ExportValidator.
package export_kiln_plugin_validator

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/kiln"
	"wit_component/kiln_plugin_types"
)

func Describe() kiln_plugin_types.Descriptor {
	return kiln.Glue.ValidatorDescribe()
}

func Validate(inputs []kiln_plugin_types.NamedValue, config []witTypes.Tuple2[string, string]) witTypes.Result[[]kiln_plugin_types.Check, kiln_plugin_types.Error] {
	return kiln.Glue.ValidatorValidate(inputs, config)
}
