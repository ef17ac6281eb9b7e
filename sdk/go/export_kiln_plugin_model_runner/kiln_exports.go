// The model-runner export glue of the Kiln Go SDK: `kiln plugin build` writes this file
// beside the bindings wit-bindgen generates for the model-runner-plugin world (which hold
// the resource plumbing of Model). It hands every call to the model runner registered with
// kiln.ExportModelRunner.
package export_kiln_plugin_model_runner

import (
	"runtime"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/kiln"
	"wit_component/kiln_plugin_types"
)

// Model is the `model` resource: a loaded kiln.Model behind a host handle.
type Model struct {
	pinner runtime.Pinner
	handle int32
	model  kiln.Model
}

// OnDrop runs when the host drops the model.
func (self *Model) OnDrop() {
	if self.model != nil {
		kiln.Glue.ModelDrop(self.model)
		self.model = nil
	}
}

func ModelLoad(artifact []uint8, config []witTypes.Tuple2[string, string]) witTypes.Result[*Model, kiln_plugin_types.Error] {
	m, err := kiln.Glue.ModelLoad(artifact, config)
	if err != nil {
		return witTypes.Err[*Model](*err)
	}
	return witTypes.Ok[*Model, kiln_plugin_types.Error](&Model{model: m})
}

func (self *Model) Metadata() kiln_plugin_types.ModelMetadata {
	return kiln.Glue.ModelMetadata(self.model)
}

func (self *Model) Predict(inputs []kiln_plugin_types.NamedValue) witTypes.Result[[]kiln_plugin_types.NamedValue, kiln_plugin_types.Error] {
	return kiln.Glue.ModelPredict(self.model, inputs)
}

func Describe() kiln_plugin_types.Descriptor {
	return kiln.Glue.ModelRunnerDescribe()
}
