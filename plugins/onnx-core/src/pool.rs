//! 2×2 max-pooling with stride 2, the pooling of most small CNNs, in one vectorised pass.
//!
//! tract's own 2×2 path takes `f32::max` per element. Rust's `max` ignores NaN, which the
//! wasm `f32.max` instruction does not, so in wasm32 it compiles to a call to libm's `fmaxf`
//! for every tap: the digits CNN spent a third of its time in the sandbox there. This op
//! pools a row pair at a time with 128-bit vectors (wasm SIMD128, or SSE on x86_64; scalar
//! elsewhere) and folds taps as tract's generic pooling does, `if a < b { b } else { a }`.
//!
//! After optimisation, [`speed_up`] puts it in place of every `MaxPool` it covers: float32,
//! channels first, a 2×2 kernel with stride 2, no dilation, no padding, no index output.
//! Anything else keeps tract's op, and so does an input that is not a float32 image.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, OptMaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Replaces each `MaxPool` of `model` that [`MaxPool2x2`] covers.
pub(crate) fn speed_up(model: &mut TypedModel) -> TractResult<()> {
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let (spec, indices) = if let Some(op) = node.op_as::<MaxPool>() {
            (&op.pool_spec, op.with_index_outputs)
        } else if let Some(op) = node.op_as::<OptMaxPool>() {
            (&op.pool_spec, op.with_index_outputs)
        } else {
            continue;
        };
        let input = model.outlet_fact(node.inputs[0])?;
        if indices.is_some() || input.datum_type != f32::datum_type() || !covered(spec) {
            continue;
        }
        let op = MaxPool2x2 {
            fallback: MaxPool::new(spec.clone(), None),
        };
        model.node_mut(id).op = Box::new(op);
    }
    Ok(())
}

fn covered(spec: &PoolSpec) -> bool {
    let no_padding = match &spec.padding {
        PaddingSpec::Valid => true,
        PaddingSpec::Explicit(before, after) => before.iter().chain(after).all(|&p| p == 0),
        // With ceil_mode a last, partial window would be pooled: tract's op does that.
        PaddingSpec::ExplicitOnnxPool(before, after, ceil) => {
            !ceil && before.iter().chain(after).all(|&p| p == 0)
        }
        PaddingSpec::SameUpper | PaddingSpec::SameLower => false,
    };
    spec.data_format == DataFormat::NCHW
        && spec.kernel_shape[..] == [2, 2]
        && spec.strides().iter().all(|&s| s == 2)
        && spec.dilations().iter().all(|&d| d == 1)
        && no_padding
}

/// Max-pooling of `[N, C, H, W]` float32 images by 2×2 windows at stride 2 (a last odd row or
/// column is left out, as without padding).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MaxPool2x2 {
    /// tract's op, for its output shape and for any input this one does not take.
    fallback: MaxPool,
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "MaxPool2x2".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let &[n, c, h, w] = input.shape() else {
            return self.fallback.eval(ctx, inputs);
        };
        if input.datum_type() != f32::datum_type() {
            return self.fallback.eval(ctx, inputs);
        }
        let (oh, ow) = (h / 2, w / 2);
        let x = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut t = Tensor::zero::<f32>(&[n, c, oh, ow])?;
        pool_planes(x, (h, w), t.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.fallback.output_facts(inputs)
    }

    as_op!();
}

/// Pools each `h`×`w` plane of `x` into the next `h/2`×`w/2` plane of `out`.
fn pool_planes(x: &[f32], (h, w): (usize, usize), out: &mut [f32]) {
    let (oh, ow) = (h / 2, w / 2);
    if oh == 0 || ow == 0 {
        return;
    }
    for (plane, pooled) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for (oy, row) in pooled.chunks_exact_mut(ow).enumerate() {
            let top = &plane[2 * oy * w..][..2 * ow];
            let bottom = &plane[(2 * oy + 1) * w..][..2 * ow];
            pool_rows(top, bottom, row);
        }
    }
}

/// The larger of two values as tract's generic pooling folds them: `b` when `a < b`, else
/// `a` (so a NaN in `a` stays, one in `b` is passed over).
#[inline(always)]
fn fold(a: f32, b: f32) -> f32 {
    if a < b { b } else { a }
}

/// `out[i]` = the largest of `top[2i]`, `top[2i+1]`, `bottom[2i]`, `bottom[2i+1]`, folded
/// as `fold(fold(top, bottom) at 2i, fold(top, bottom) at 2i+1)` in every lane.
fn pool_rows(top: &[f32], bottom: &[f32], out: &mut [f32]) {
    let done = simd_rows(top, bottom, out);
    for (i, o) in out.iter_mut().enumerate().skip(done) {
        *o = fold(
            fold(top[2 * i], bottom[2 * i]),
            fold(top[2 * i + 1], bottom[2 * i + 1]),
        );
    }
}

/// Four outputs at a time; returns how many were written.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn simd_rows(top: &[f32], bottom: &[f32], out: &mut [f32]) -> usize {
    use std::arch::wasm32::*;
    let quads = out.len() / 4;
    for q in 0..quads {
        let (t, b) = (&top[8 * q..8 * q + 8], &bottom[8 * q..8 * q + 8]);
        // SAFETY: each slice above holds the 8 floats (32 bytes) the two loads read, and
        // `out` the 4 the store writes; v128 loads and stores need no alignment.
        unsafe {
            let t0 = v128_load(t.as_ptr().cast());
            let t1 = v128_load(t.as_ptr().add(4).cast());
            let b0 = v128_load(b.as_ptr().cast());
            let b1 = v128_load(b.as_ptr().add(4).cast());
            // pmax(a, b) is `a < b ? b : a`, lane by lane: `fold`.
            let v0 = f32x4_pmax(t0, b0);
            let v1 = f32x4_pmax(t1, b1);
            let even = i32x4_shuffle::<0, 2, 4, 6>(v0, v1);
            let odd = i32x4_shuffle::<1, 3, 5, 7>(v0, v1);
            v128_store(
                out[4 * q..4 * q + 4].as_mut_ptr().cast(),
                f32x4_pmax(even, odd),
            );
        }
    }
    4 * quads
}

/// Four outputs at a time; returns how many were written.
#[cfg(target_arch = "x86_64")]
fn simd_rows(top: &[f32], bottom: &[f32], out: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let quads = out.len() / 4;
    for q in 0..quads {
        let (t, b) = (&top[8 * q..8 * q + 8], &bottom[8 * q..8 * q + 8]);
        // SAFETY: SSE is part of x86_64's baseline; each slice above holds the 8 floats the
        // two unaligned loads read, and `out` the 4 the store writes.
        unsafe {
            let t0 = _mm_loadu_ps(t.as_ptr());
            let t1 = _mm_loadu_ps(t.as_ptr().add(4));
            let b0 = _mm_loadu_ps(b.as_ptr());
            let b1 = _mm_loadu_ps(b.as_ptr().add(4));
            // maxps(x, y) is `x > y ? x : y`, so maxps(b, a) is `fold(a, b)`.
            let v0 = _mm_max_ps(b0, t0);
            let v1 = _mm_max_ps(b1, t1);
            let even = _mm_shuffle_ps::<0b10_00_10_00>(v0, v1);
            let odd = _mm_shuffle_ps::<0b11_01_11_01>(v0, v1);
            _mm_storeu_ps(out[4 * q..4 * q + 4].as_mut_ptr(), _mm_max_ps(odd, even));
        }
    }
    4 * quads
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
fn simd_rows(_top: &[f32], _bottom: &[f32], _out: &mut [f32]) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded sequence in [-1, 1) on 64 levels, so ties occur.
    fn values(count: usize, seed: u64) -> Vec<f32> {
        crate::seeded_values(count, seed, 64)
    }

    fn spec(kernel: [usize; 2], strides: [usize; 2], padding: PaddingSpec) -> PoolSpec {
        PoolSpec::new(
            DataFormat::NCHW,
            tvec!(kernel[0], kernel[1]),
            padding,
            None,
            Some(tvec!(strides[0], strides[1])),
            3,
            3,
        )
    }

    /// Evaluates `op` and tract's `MaxPool` with `spec` on one input.
    fn both(op: &MaxPool2x2, shape: &[usize], seed: u64) -> (Tensor, Tensor) {
        let count = shape.iter().product();
        let x = Tensor::from_shape(shape, &values(count, seed)).unwrap();
        let ours = op.eval_out_of_plan(tvec!(x.clone().into_tvalue())).unwrap();
        let theirs = op
            .fallback
            .eval_out_of_plan(tvec!(x.into_tvalue()))
            .unwrap();
        (
            ours.unwrap()[0].clone().into_tensor(),
            theirs.unwrap()[0].clone().into_tensor(),
        )
    }

    #[test]
    fn pools_like_tract_on_every_row_width_and_batch() {
        let op = MaxPool2x2 {
            fallback: MaxPool::new(spec([2, 2], [2, 2], PaddingSpec::Valid), None),
        };
        // Widths below, at and past one vector, odd sizes (the last row or column is left
        // out), batches of one and more.
        for (i, shape) in [
            [1, 3, 8, 8],
            [2, 3, 4, 4],
            [3, 3, 5, 7],
            [1, 3, 2, 18],
            [4, 3, 9, 17],
        ]
        .iter()
        .enumerate()
        {
            let (ours, theirs) = both(&op, shape, i as u64);
            assert_eq!(ours.shape(), theirs.shape(), "shape {shape:?}");
            assert_eq!(
                crate::floats(&ours),
                crate::floats(&theirs),
                "values for {shape:?}"
            );
        }
    }

    /// A model of one `MaxPool` with `spec` over `[2, 3, 8, 8]` (batch symbolic or not),
    /// optimised, then sped up.
    fn pooling_model(spec: PoolSpec, symbolic: bool) -> TypedModel {
        let mut model = TypedModel::default();
        let n = if symbolic {
            model.symbols.sym("N").to_dim()
        } else {
            2.to_dim()
        };
        let shape: TVec<TDim> = tvec!(n, 3.to_dim(), 8.to_dim(), 8.to_dim());
        let x = model.add_source("x", f32::fact(shape.as_slice())).unwrap();
        let y = model
            .wire_node("pool", MaxPool::new(spec, None), &[x])
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        let mut model = model.into_optimized().unwrap();
        speed_up(&mut model).unwrap();
        model
    }

    #[test]
    fn speed_up_replaces_the_pools_it_covers_in_a_plan() {
        let x = Tensor::from_shape(&[2, 3, 8, 8], &values(384, 3)).unwrap();
        let expected = MaxPool2x2 {
            fallback: MaxPool::new(spec([2, 2], [2, 2], PaddingSpec::Valid), None),
        }
        .fallback
        .eval_out_of_plan(tvec!(x.clone().into_tvalue()))
        .unwrap()
        .unwrap();
        for symbolic in [false, true] {
            let model = pooling_model(spec([2, 2], [2, 2], PaddingSpec::Valid), symbolic);
            let ours = model
                .nodes()
                .iter()
                .filter(|n| n.op_is::<MaxPool2x2>())
                .count();
            assert_eq!(ours, 1, "symbolic batch: {symbolic}");
            let out = model
                .into_runnable()
                .unwrap()
                .run(tvec!(x.clone().into_tvalue()))
                .unwrap();
            assert_eq!(out[0], expected[0], "symbolic batch: {symbolic}");
        }
        // A stride of 1 keeps tract's op.
        let model = pooling_model(spec([2, 2], [1, 1], PaddingSpec::Valid), false);
        assert!(!model.nodes().iter().any(|n| n.op_is::<MaxPool2x2>()));
    }

    #[test]
    fn a_single_row_pools_to_nothing() {
        // (tract's own 2×2 path panics on this shape.)
        let op = MaxPool2x2 {
            fallback: MaxPool::new(spec([2, 2], [2, 2], PaddingSpec::Valid), None),
        };
        let x = Tensor::from_shape(&[1, 3, 1, 6], &values(18, 7)).unwrap();
        let out = op
            .eval_out_of_plan(tvec!(x.into_tvalue()))
            .unwrap()
            .unwrap();
        assert_eq!(out[0].shape(), &[1, 3, 0, 3]);
    }

    #[test]
    fn covers_only_unpadded_2x2_stride_2() {
        assert!(covered(&spec([2, 2], [2, 2], PaddingSpec::Valid)));
        assert!(covered(&spec(
            [2, 2],
            [2, 2],
            PaddingSpec::Explicit(tvec!(0, 0), tvec!(0, 0))
        )));
        assert!(!covered(&spec([2, 2], [1, 1], PaddingSpec::Valid)));
        assert!(!covered(&spec([3, 3], [2, 2], PaddingSpec::Valid)));
        assert!(!covered(&spec([2, 2], [2, 2], PaddingSpec::SameUpper)));
        assert!(!covered(&spec(
            [2, 2],
            [2, 2],
            PaddingSpec::ExplicitOnnxPool(tvec!(0, 0), tvec!(0, 0), true)
        )));
        assert!(!covered(&spec(
            [2, 2],
            [2, 2],
            PaddingSpec::Explicit(tvec!(0, 0), tvec!(1, 1))
        )));
    }
}
