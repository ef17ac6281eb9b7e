//! ONNX models for Kiln: what the `onnx-runner` plugin runs inside the sandbox and what its
//! native twin in the host runs outside it, so both answer alike.
//!
//! A model is read from its bytes with tract, checked (every operator known, every input and
//! output of a type a Kiln value can carry), optimised once, and then run many times. The
//! batch dimension stays symbolic: one loaded model serves every batch size (and a batch
//! size that recurs gets a plan of its own, see `plans`).
//!
//! The signature speaks in Kiln's terms: an input or output is a tensor of `float32`,
//! `float64`, `int32`, `int64`, `uint8` or `boolean`, or (outputs only) of text, as
//! scikit-learn classifiers converted with skl2onnx return their labels.

mod im2col;
// The kernel is registered with tract only in a wasm32 build with SIMD128.
#[cfg(any(test, all(target_arch = "wasm32", target_feature = "simd128")))]
mod matmul;
mod plans;
mod pool;
mod predict;
mod scaler;
mod signature;

use std::cell::RefCell;

use tract_onnx::prelude::*;

pub use predict::{CONFIG_KEYS, Column, In, Options, Prediction};
pub use signature::{Elem, Port};

/// The largest model accepted, in bytes.
pub const MAX_MODEL_BYTES: usize = 512 << 20;

/// A loaded, optimised model. It is `Send` but not `Sync`: a call takes its plans' state.
pub struct OnnxModel {
    plans: RefCell<plans::Plans>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    /// The model's `producer_name` and version, and its opsets, for the metadata.
    pub properties: Vec<(String, String)>,
}

/// One output of a prediction.
pub enum Output {
    /// Numbers, packed little-endian as Kiln tensors carry them.
    Tensor {
        elem: Elem,
        shape: Vec<u64>,
        data: Vec<u8>,
    },
    /// Text elements, row-major.
    Text {
        shape: Vec<u64>,
        values: Vec<String>,
    },
}

impl Output {
    pub fn shape(&self) -> &[u64] {
        match self {
            Output::Tensor { shape, .. } | Output::Text { shape, .. } => shape,
        }
    }
}

/// Why a model cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// An operator or type tract or Kiln does not handle (the model itself may be valid).
    pub unsupported: bool,
    pub message: String,
}

impl From<String> for LoadError {
    fn from(message: String) -> Self {
        LoadError {
            unsupported: false,
            message,
        }
    }
}

impl From<&str> for LoadError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl OnnxModel {
    /// Reads, checks and optimises a model.
    pub fn load(bytes: &[u8]) -> Result<OnnxModel, LoadError> {
        if bytes.len() > MAX_MODEL_BYTES {
            return Err(format!(
                "the model is {} bytes; the most accepted is {MAX_MODEL_BYTES}",
                bytes.len()
            )
            .into());
        }
        let mut onnx = tract_onnx::onnx();
        scaler::register(&mut onnx.op_register);
        let proto = onnx
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| format!("not an ONNX model: {}", root_cause(&e)))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or("not an ONNX model: it has no graph")?;
        signature::check_operators(graph, &onnx.op_register).map_err(|message| LoadError {
            unsupported: true,
            message,
        })?;
        let mut model = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| format!("the model cannot be read: {}", chain(&e)))?;
        signature::symbolic_batch(&mut model).map_err(|e| LoadError {
            unsupported: true,
            message: chain(&e),
        })?;
        let typed = model
            .into_typed()
            .map_err(|e| format!("the model's types cannot be inferred: {}", chain(&e)))?;
        let unsupported = |message| LoadError {
            unsupported: true,
            message,
        };
        let inputs = signature::ports(&typed, &typed.inputs, true).map_err(unsupported)?;
        let outputs = signature::ports(&typed, &typed.outputs, false).map_err(unsupported)?;
        let batch = inputs.iter().any(|p| p.shape.first() == Some(&None));
        let plans = typed
            .into_decluttered()
            .and_then(|m| plans::Plans::new(m, batch))
            .map_err(|e| format!("the model cannot be optimised: {}", chain(&e)))?;
        let mut properties = vec![("format".to_string(), "onnx".to_string())];
        if !proto.producer_name.is_empty() {
            properties.push((
                "producer".into(),
                format!("{} {}", proto.producer_name, proto.producer_version)
                    .trim()
                    .to_string(),
            ));
        }
        let opsets: Vec<String> = proto
            .opset_import
            .iter()
            .map(|o| {
                let domain = if o.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &o.domain
                };
                format!("{domain}:{}", o.version)
            })
            .collect();
        properties.push(("opsets".into(), opsets.join(",")));
        Ok(OnnxModel {
            plans: RefCell::new(plans),
            inputs,
            outputs,
            properties,
        })
    }

    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    /// Builds the tensor for input `index` from a Kiln tensor's parts, converting numbers
    /// to the input's element type when they differ (e.g. float64 rows for a float32 model).
    pub fn input_tensor(
        &self,
        index: usize,
        elem: Elem,
        shape: &[u64],
        data: &[u8],
    ) -> Result<Tensor, String> {
        let port = &self.inputs[index];
        port.check_shape(shape)?;
        let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let count: usize = shape.iter().product();
        if data.len() != count * elem.size() {
            return Err(format!(
                "input `{}`: {} bytes of data for {count} {} elements",
                port.name,
                data.len(),
                elem.name()
            ));
        }
        let tensor = elem.tensor(&shape, data).map_err(|e| chain(&e))?;
        port.convert(tensor)
    }

    /// Builds the tensor for input `index` from numeric columns: a `[rows, columns]` matrix.
    pub fn matrix_tensor(&self, index: usize, columns: &[Vec<f64>]) -> Result<Tensor, String> {
        let port = &self.inputs[index];
        let rows = columns.first().map_or(0, Vec::len);
        port.check_shape(&[rows as u64, columns.len() as u64])?;
        let mut flat = Vec::with_capacity(rows * columns.len());
        for r in 0..rows {
            flat.extend(columns.iter().map(|c| c[r]));
        }
        let tensor = Tensor::from_shape(&[rows, columns.len()], &flat).map_err(|e| chain(&e))?;
        port.convert(tensor)
    }

    /// Runs the model on one tensor per input, in the inputs' order.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Output>, String> {
        if inputs.len() != self.inputs.len() {
            return Err(format!(
                "the model takes {} inputs; {} given",
                self.inputs.len(),
                inputs.len()
            ));
        }
        let batch = signature::batch_of(&self.inputs, &inputs)?;
        let values: TVec<TValue> = inputs.into_iter().map(TValue::from).collect();
        let out = self
            .plans
            .borrow_mut()
            .run(batch, values)
            .map_err(|e| format!("the model failed: {}", chain(&e)))?;
        out.into_iter()
            .zip(&self.outputs)
            .map(|(value, port)| {
                let t = value.into_tensor();
                let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
                port.check_output(&shape, batch)?;
                port.output(t, shape)
            })
            .collect()
    }
}

/// The error's causes, outermost first, joined.
fn chain(e: &TractError) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}

fn root_cause(e: &TractError) -> String {
    e.root_cause().to_string()
}

impl OnnxModel {
    /// The metadata's free-form facts: the format, producer and opsets, then each input's
    /// and output's type and shape (`input.NAME` = `float32 [N, 4]`).
    pub fn metadata_properties(&self) -> Vec<(String, String)> {
        let mut props = self.properties.clone();
        for (what, ports) in [("input", &self.inputs), ("output", &self.outputs)] {
            for p in ports {
                props.push((format!("{what}.{}", p.name), p.description()));
            }
        }
        props
    }
}

/// For tests: a seeded sequence of `count` values in [-1, 1), on `levels` evenly spaced
/// levels.
#[cfg(test)]
pub(crate) fn seeded_values(count: usize, seed: u64, levels: u64) -> Vec<f32> {
    let mut s = seed;
    (0..count)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) % levels) as f32 * 2.0 / levels as f32 - 1.0
        })
        .collect()
}

/// For tests: the values of a float32 tensor.
#[cfg(test)]
pub(crate) fn floats(t: &Tensor) -> &[f32] {
    t.try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>())
        .expect("a float32 tensor in memory")
}
