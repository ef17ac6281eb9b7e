//! A model's inputs and outputs in Kiln's terms, and the checks made at load and per call.

use std::collections::BTreeSet;

use tract_hir::infer::Factoid;
use tract_hir::internal::*;
use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::GraphProto;

/// The element type of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    Float32,
    Float64,
    Int32,
    Int64,
    Uint8,
    Boolean,
    /// Outputs only: strings (e.g. the labels of a classifier).
    Text,
}

impl Elem {
    /// The name Kiln's `dtype` gives it (`text` for strings).
    pub fn name(self) -> &'static str {
        match self {
            Elem::Float32 => "float32",
            Elem::Float64 => "float64",
            Elem::Int32 => "int32",
            Elem::Int64 => "int64",
            Elem::Uint8 => "uint8",
            Elem::Boolean => "boolean",
            Elem::Text => "text",
        }
    }

    /// Bytes per element in a Kiln tensor (0 for text, which no tensor carries).
    pub fn size(self) -> usize {
        match self {
            Elem::Float64 | Elem::Int64 => 8,
            Elem::Float32 | Elem::Int32 => 4,
            Elem::Uint8 | Elem::Boolean => 1,
            Elem::Text => 0,
        }
    }

    fn of(dt: DatumType) -> Option<Elem> {
        Some(match dt {
            DatumType::F32 => Elem::Float32,
            DatumType::F64 => Elem::Float64,
            DatumType::I32 => Elem::Int32,
            DatumType::I64 => Elem::Int64,
            DatumType::U8 => Elem::Uint8,
            DatumType::Bool => Elem::Boolean,
            DatumType::String => Elem::Text,
            _ => return None,
        })
    }

    fn datum(self) -> DatumType {
        match self {
            Elem::Float32 => DatumType::F32,
            Elem::Float64 => DatumType::F64,
            Elem::Int32 => DatumType::I32,
            Elem::Int64 => DatumType::I64,
            Elem::Uint8 => DatumType::U8,
            Elem::Boolean => DatumType::Bool,
            Elem::Text => DatumType::String,
        }
    }

    /// A tensor from little-endian packed elements (one copy, into tract's aligned buffer).
    pub(crate) fn tensor(self, shape: &[usize], data: &[u8]) -> TractResult<Tensor> {
        #[cfg(not(target_endian = "little"))]
        compile_error!("Kiln tensors are little-endian; this target is not");
        if self == Elem::Boolean && data.iter().any(|&b| b > 1) {
            bail!("a boolean tensor holds only 0 and 1");
        }
        // SAFETY: every bit pattern of `data` is a valid element of these plain types (a
        // boolean was checked above to be 0 or 1), and the length was checked by the caller.
        unsafe { Tensor::from_raw_dt(self.datum(), shape, data) }
    }
}

/// A model input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub elem: Elem,
    /// Each dimension's size; `None` where it varies (the batch).
    pub shape: Vec<Option<u64>>,
}

impl Port {
    /// `[N, 4]`-style text for descriptions.
    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self
            .shape
            .iter()
            .map(|d| d.map_or("N".to_string(), |d| d.to_string()))
            .collect();
        format!("[{}]", dims.join(", "))
    }

    /// `float32 [N, 4]`.
    pub fn description(&self) -> String {
        format!("{} {}", self.elem.name(), self.shape_text())
    }

    /// Whether `shape` has this port's rank and its fixed dimensions.
    fn fits(&self, shape: &[u64]) -> bool {
        shape.len() == self.shape.len()
            && shape
                .iter()
                .zip(&self.shape)
                .all(|(&d, want)| want.is_none_or(|w| w == d))
    }

    pub(crate) fn check_shape(&self, shape: &[u64]) -> Result<(), String> {
        if self.fits(shape) {
            Ok(())
        } else {
            Err(format!(
                "input `{}` has shape {}; this one is {shape:?}",
                self.name,
                self.shape_text()
            ))
        }
    }

    /// The tensor in this input's element type.
    pub(crate) fn convert(&self, t: Tensor) -> Result<Tensor, String> {
        if t.datum_type() == self.elem.datum() {
            return Ok(t);
        }
        t.cast_to_dt(self.elem.datum())
            .map(|c| c.into_owned())
            .map_err(|e| {
                format!(
                    "input `{}` is {}; {:?} cannot be converted: {e}",
                    self.name,
                    self.elem.name(),
                    t.datum_type()
                )
            })
    }

    pub(crate) fn check_output(&self, shape: &[u64], batch: Option<u64>) -> Result<(), String> {
        let batch_kept = match (batch, shape.first(), self.shape.first()) {
            (Some(b), Some(&d), Some(None)) => b == d,
            _ => true,
        };
        if self.fits(shape) && batch_kept {
            Ok(())
        } else {
            Err(format!(
                "output `{}` came out with shape {shape:?}, not {}",
                self.name,
                self.shape_text()
            ))
        }
    }

    pub(crate) fn output(&self, t: Tensor, shape: Vec<u64>) -> Result<crate::Output, String> {
        if self.elem == Elem::Text {
            let values = t
                .try_as_plain_ram()
                .and_then(|v| v.as_slice::<String>())
                .map_err(|e| format!("output `{}`: {e}", self.name))?
                .to_vec();
            return Ok(crate::Output::Text { shape, values });
        }
        let t = if t.datum_type() == self.elem.datum() {
            t
        } else {
            t.cast_to_dt(self.elem.datum())
                .map_err(|e| format!("output `{}`: {e}", self.name))?
                .into_owned()
        };
        // A plain numeric tensor's buffer is its elements, packed, in native (little-endian,
        // checked above) order: exactly a Kiln tensor's data.
        let data = t.as_bytes().to_vec();
        Ok(crate::Output::Tensor {
            elem: self.elem,
            shape,
            data,
        })
    }
}

/// Refuses a model whose operators tract does not know, naming each once.
pub(crate) fn check_operators(graph: &GraphProto, register: &OnnxOpRegister) -> Result<(), String> {
    let mut missing = BTreeSet::new();
    let mut seen_in = std::collections::BTreeMap::new();
    walk(graph, &mut |node| {
        if !register.0.contains_key(&node.op_type) {
            let domain = if node.domain.is_empty() {
                "ai.onnx".to_string()
            } else {
                node.domain.clone()
            };
            let key = format!("{} ({domain})", node.op_type);
            seen_in
                .entry(key.clone())
                .or_insert_with(|| node.name.clone());
            missing.insert(key);
        }
    });
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|k| {
            let advice = if k.starts_with("ZipMap ") {
                ": it outputs a sequence of maps; convert with skl2onnx's option {'zipmap': False}"
            } else {
                ""
            };
            match seen_in.get(k).filter(|n| !n.is_empty()) {
                Some(node) => format!("{k} at node `{node}`{advice}"),
                None => format!("{k}{advice}"),
            }
        })
        .collect();
    Err(format!(
        "unsupported operator{}: {}",
        if list.len() > 1 { "s" } else { "" },
        list.join("; ")
    ))
}

fn walk(graph: &GraphProto, f: &mut dyn FnMut(&tract_onnx::pb::NodeProto)) {
    for node in &graph.node {
        f(node);
        for attr in &node.attribute {
            if let Some(g) = &attr.g {
                walk(g, f);
            }
            for g in &attr.graphs {
                walk(g, f);
            }
        }
    }
}

/// The batch dimension's symbol.
pub(crate) const BATCH: &str = "N";

/// Makes an input's unknown first dimension the batch symbol `N`; any other unknown
/// dimension is refused.
pub(crate) fn symbolic_batch(model: &mut InferenceModel) -> TractResult<()> {
    let n = model.symbols.sym(BATCH);
    for i in 0..model.inputs.len() {
        let mut fact = model.input_fact(i)?.clone();
        let name = model.node(model.inputs[i].node).name.clone();
        if fact.shape.is_open() {
            bail!("input `{name}` has no known rank");
        }
        let unknown: Vec<usize> = fact
            .shape
            .dims()
            .enumerate()
            .filter(|(_, d)| d.concretize().is_none())
            .map(|(i, _)| i)
            .collect();
        for axis in unknown {
            if axis != 0 {
                bail!(
                    "input `{name}` has an unknown dimension {axis}; only the first (the batch) may vary"
                );
            }
            fact.shape.set_dim(0, n.clone().into());
        }
        model.set_input_fact(i, fact)?;
    }
    Ok(())
}

/// The inputs' or outputs' ports; a type Kiln cannot carry is refused.
pub(crate) fn ports(
    model: &TypedModel,
    outlets: &[OutletId],
    inputs: bool,
) -> Result<Vec<Port>, String> {
    let what = if inputs { "input" } else { "output" };
    outlets
        .iter()
        .map(|&o| {
            let fact = model.outlet_fact(o).map_err(|e| e.to_string())?;
            let name = model
                .outlet_label(o)
                .map(str::to_string)
                .unwrap_or_else(|| model.node(o.node).name.clone());
            let elem = Elem::of(fact.datum_type)
                .filter(|e| !(inputs && *e == Elem::Text))
                .ok_or_else(|| {
                    format!(
                        "{what} `{name}` is a {:?} tensor; Kiln {what}s are float32, float64, int32, int64, uint8 or boolean{}",
                        fact.datum_type,
                        if inputs { "" } else { " (or text)" }
                    )
                })?;
            let shape = fact
                .shape
                .iter()
                .map(|d| d.as_i64().map(|d| d as u64))
                .collect();
            Ok(Port { name, elem, shape })
        })
        .collect()
}

/// The batch size the inputs agree on (their first dimension where it varies).
pub(crate) fn batch_of(ports: &[Port], tensors: &[Tensor]) -> Result<Option<u64>, String> {
    let mut batch: Option<(u64, &str)> = None;
    for (port, t) in ports.iter().zip(tensors) {
        if port.shape.first() == Some(&None) {
            let b = t.shape()[0] as u64;
            match batch {
                Some((other, first)) if other != b => {
                    return Err(format!(
                        "inputs `{first}` and `{}` differ in batch size ({other} and {b})",
                        port.name
                    ));
                }
                None => batch = Some((b, &port.name)),
                _ => {}
            }
        }
    }
    Ok(batch.map(|(b, _)| b))
}
