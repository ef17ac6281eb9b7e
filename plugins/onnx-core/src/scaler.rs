//! `Scaler` (ai.onnx.ml), which tract lacks and skl2onnx writes for every `StandardScaler`:
//! `Y = (X - offset) * scale` along the last axis, as float32.

use tract_hir::internal::*;
use tract_hir::ops::logic::wire_with_rank_broadcast;
use tract_hir::tract_core::ops::{cast::cast, math};
use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Scaler", scaler);
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Scaler {
    offset: Arc<Tensor>,
    scale: Arc<Tensor>,
}

fn scaler(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = node
        .get_attr_opt_vec("offset")?
        .unwrap_or_else(|| vec![0.0]);
    let scale: Vec<f32> = node.get_attr_opt_vec("scale")?.unwrap_or_else(|| vec![1.0]);
    node.expect(
        !offset.is_empty() && !scale.is_empty(),
        "offset and scale are not empty",
    )?;
    Ok((
        expand(Scaler {
            offset: rctensor1(&offset),
            scale: rctensor1(&scale),
        }),
        vec![],
    ))
}

impl Expansion for Scaler {
    fn name(&self) -> StaticName {
        "Scaler".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        ensure!(fact.rank() >= 1, "Scaler takes a tensor of rank 1 or more");
        let width = fact.shape.last().and_then(|d| d.as_i64());
        for (what, t) in [("offset", &self.offset), ("scale", &self.scale)] {
            let n = t.len() as i64;
            ensure!(
                n == 1 || width == Some(n),
                "Scaler's {what} has {n} values for {:?} features",
                width
            );
        }
        let mut x = inputs[0];
        if fact.datum_type != f32::datum_type() {
            x = model.wire_node(format!("{prefix}.to_f32"), cast(f32::datum_type()), &[x])?[0];
        }
        let offset = model.add_const(format!("{prefix}.offset"), self.offset.clone())?;
        let scale = model.add_const(format!("{prefix}.scale"), self.scale.clone())?;
        let centred =
            wire_with_rank_broadcast(format!("{prefix}.sub"), model, math::sub(), &[x, offset])?;
        wire_with_rank_broadcast(
            format!("{prefix}.mul"),
            model,
            math::mul(),
            &[centred[0], scale],
        )
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(1)
    }
}
