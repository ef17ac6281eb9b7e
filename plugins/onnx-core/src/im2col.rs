//! The patches of 2-D float32 convolutions, written straight into the matrix kernel's packing.
//!
//! tract runs a convolution as a matrix product: its `Im2Col` copies each image's patches
//! into the packed layout of the product's right-hand side, and `OptMatMul` multiplies the
//! packed weights by that. The packing is panels of `r` output positions; in a panel, each of
//! the `k` patch values (input channel, kernel row, kernel column) takes `r` consecutive
//! floats, one per position. tract's patcher walks every padded patch row through three
//! non-inlined calls and a writer that checks for a panel boundary at every value; in wasm
//! each call and loop head also pays wasmtime's stack and epoch checks, and the digits CNN
//! spent half its sandboxed time there.
//!
//! This op first copies an image into a zero-bordered buffer (when the convolution pads), so
//! that every patch value of an output position is at a fixed offset from that position's
//! base: a panel is then, for each of the `k` offsets, `r` loads. When a panel's positions
//! are two runs of four consecutive bases (eight positions along an output row, or two rows
//! of four, at stride 1 with eight-wide panels, as in the wasm build) that is two four-float
//! copies; otherwise one value at a time.
//!
//! After optimisation, [`speed_up`] puts it in place of every `Im2Col` it covers: float32,
//! channels first, two spatial axes, a zero pad value and tract's float packing. Anything
//! else keeps tract's op, and so does an input it was not built for.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::tract_linalg::mmm::{
    EagerPackedInput, MMMInputValue, PackedExoticFact, PackedMatrixStorage,
};
use tract_onnx::tract_core::internal::tract_linalg::pack::PackedFormat;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::conv::Im2Col;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Replaces each `Im2Col` of `model` that [`Im2ColF32`] covers.
pub(crate) fn speed_up(model: &mut TypedModel) -> TractResult<()> {
    for id in 0..model.nodes().len() {
        let node = model.node(id);
        let Some(op) = node.op_as::<Im2Col>() else {
            continue;
        };
        if let Some(ours) = Im2ColF32::covering(model, node, op)? {
            model.node_mut(id).op = Box::new(ours);
        }
    }
    Ok(())
}

/// Im2col of float32 `[N, C, H, W]` (or `[C, H, W]`) images into tract's float packing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Im2ColF32 {
    /// tract's op, for its output fact and for any input this one does not take.
    fallback: Im2Col,
    /// The packing the matrix product reads.
    format: PackedFormat,
    /// Values per patch: input channels per group × kernel height × kernel width.
    k: usize,
}

impl Im2ColF32 {
    /// This op in place of `node`'s `op`, if it covers it.
    fn covering(model: &TypedModel, node: &TypedNode, op: &Im2Col) -> TractResult<Option<Self>> {
        // tract's second input is the pad value, a constant zero for float convolutions.
        let zero_pad = match node.inputs[1..] {
            [] => true,
            [pad] => {
                model
                    .outlet_fact(pad)?
                    .konst
                    .as_ref()
                    .and_then(|t| t.as_uniform())
                    == Some(Tensor::zero_scalar::<f32>()?)
            }
            _ => false,
        };
        match zero_pad {
            true => Self::over(op, model.outlet_fact(node.inputs[0])?),
            false => Ok(None),
        }
    }

    /// This op in place of `op` (padding with zeros) on `input`, if it covers it.
    fn over(op: &Im2Col, input: &TypedFact) -> TractResult<Option<Self>> {
        let spec = &op.pool_spec;
        if input.datum_type != f32::datum_type()
            || !matches!(spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            || spec.kernel_shape.len() != 2
        {
            return Ok(None);
        }
        let facts = op.output_facts(&[input])?;
        let Some(packed) = facts
            .first()
            .and_then(|f| f.exotic_fact())
            .and_then(|f| f.downcast_ref::<PackedExoticFact>())
        else {
            return Ok(None);
        };
        match packed.format.downcast_ref::<PackedFormat>() {
            Some(format) if format.dt == f32::datum_type() && format.r > 0 => Ok(Some(Im2ColF32 {
                fallback: op.clone(),
                format: format.clone(),
                k: packed.k,
            })),
            _ => Ok(None),
        }
    }

    /// Where the patches of an input of `shape` are, or `None` if this op does not take it.
    fn geometry(&self, shape: &[usize]) -> Option<Geometry> {
        let spec = &self.fallback.pool_spec;
        let (images, channels, h, w) = match (spec.data_format, shape) {
            (DataFormat::NCHW, &[n, c, h, w]) => (n, c, h, w),
            (DataFormat::CHW, &[c, h, w]) => (1, c, h, w),
            _ => return None,
        };
        let groups = self.fallback.group;
        let pads = spec.computed_padding(&[h, w]);
        let (oh, ow) = (pads[0].convoluted, pads[1].convoluted);
        let [kh, kw] = spec.kernel_shape[..] else {
            return None;
        };
        let (sy, sx, dy, dx) = (
            spec.stride(0),
            spec.stride(1),
            spec.dilation(0),
            spec.dilation(1),
        );
        if groups == 0 || channels % groups != 0 || oh * ow == 0 || kh * kw == 0 {
            return None;
        }
        let per_group = channels / groups;
        let hp = h + pads[0].pad_before + pads[0].pad_after;
        let wp = w + pads[1].pad_before + pads[1].pad_after;
        // Every patch must lie inside the padded image (tract's output shape says it does).
        if per_group * kh * kw != self.k
            || (oh - 1) * sy + (kh - 1) * dy >= hp
            || (ow - 1) * sx + (kw - 1) * dx >= wp
        {
            return None;
        }
        let bases = (0..oh)
            .flat_map(|yo| (0..ow).map(move |xo| yo * sy * wp + xo * sx))
            .collect();
        let offsets = (0..per_group)
            .flat_map(|c| {
                (0..kh).flat_map(move |ky| (0..kw).map(move |kx| (c * hp + ky * dy) * wp + kx * dx))
            })
            .collect();
        Some(Geometry {
            images,
            groups,
            channels,
            h,
            w,
            top: pads[0].pad_before,
            left: pads[1].pad_before,
            hp,
            wp,
            bases,
            offsets,
        })
    }
}

/// An input's patches: where each output position's patch starts in a padded group of
/// channels, and where each of its `k` values is from there.
struct Geometry {
    images: usize,
    groups: usize,
    channels: usize,
    h: usize,
    w: usize,
    /// Padding above and left of the image.
    top: usize,
    left: usize,
    /// The padded image's height and width.
    hp: usize,
    wp: usize,
    /// Per output position, row-major: its patch's first value in a padded group.
    bases: Vec<usize>,
    /// Per patch value (channel, kernel row, kernel column): its offset from the base.
    offsets: Vec<usize>,
}

impl Geometry {
    fn padded(&self) -> bool {
        (self.hp, self.wp) != (self.h, self.w)
    }

    /// Copies `image` (`channels` planes of `h`×`w`) into the interior of `padded`, whose
    /// border stays as it is (zero).
    fn pad(&self, image: &[f32], padded: &mut [f32]) {
        let planes = image.chunks_exact(self.h * self.w);
        for (plane, out) in planes.zip(padded.chunks_exact_mut(self.hp * self.wp)) {
            let rows = out[self.top * self.wp..].chunks_exact_mut(self.wp);
            for (row, out) in plane.chunks_exact(self.w).zip(rows) {
                out[self.left..self.left + self.w].copy_from_slice(row);
            }
        }
    }
}

/// Fills `out`, panels of `r` positions of `panel_len` floats each, from `src`: in panel `p`,
/// value `i` of position `p·r + lane` is `src[offsets[i] + bases[p·r + lane]]`, at
/// `i·r + lane`. Nothing else is written.
fn pack(
    src: &[f32],
    bases: &[usize],
    offsets: &[usize],
    r: usize,
    panel_len: usize,
    out: &mut [f32],
) {
    for (panel, lanes) in out.chunks_exact_mut(panel_len).zip(bases.chunks(r)) {
        if r == 8
            && let &[b0, b1, b2, b3, b4, b5, b6, b7] = lanes
            && [b1, b2, b3] == [b0 + 1, b0 + 2, b0 + 3]
            && [b5, b6, b7] == [b4 + 1, b4 + 2, b4 + 3]
        {
            for (values, &o) in panel.as_chunks_mut::<8>().0.iter_mut().zip(offsets) {
                values[..4].copy_from_slice(&src[o + b0..o + b0 + 4]);
                values[4..].copy_from_slice(&src[o + b4..o + b4 + 4]);
            }
        } else {
            for (values, &o) in panel.chunks_exact_mut(r).zip(offsets) {
                for (v, &b) in values.iter_mut().zip(lanes) {
                    *v = src[o + b];
                }
            }
        }
    }
}

impl Op for Im2ColF32 {
    fn name(&self) -> StaticName {
        "Im2ColF32".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Im2ColF32 {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let geometry = match input.datum_type() == f32::datum_type() {
            true => self.geometry(input.shape()),
            false => None,
        };
        let Some(geo) = geometry else {
            return self.fallback.eval(ctx, inputs);
        };
        let x = input.try_as_plain_ram()?.as_slice::<f32>()?;
        let (r, panel_len) = (self.format.r, self.format.single_panel_len(self.k));
        let positions = geo.bases.len();
        let len = positions.div_ceil(r) * panel_len;
        let per_group = geo.channels / geo.groups * geo.hp * geo.wp;
        let padded_len = match geo.padded() {
            true => geo.channels * geo.hp * geo.wp,
            false => 0,
        };
        let mut padded = vec![0f32; padded_len];
        let mut values: TVec<Box<dyn MMMInputValue>> = TVec::with_capacity(geo.images * geo.groups);
        for image in x.chunks_exact(geo.channels * geo.h * geo.w) {
            let src = if geo.padded() {
                geo.pad(image, &mut padded);
                &padded[..]
            } else {
                image
            };
            for group in src.chunks_exact(per_group) {
                // Zeroed: the lanes past the last position are multiplied too (and dropped),
                // and garbage there could be denormals, which stall the float units.
                let mut data =
                    Tensor::zero_aligned_dt(f32::datum_type(), &[len], self.format.alignment())?;
                let mut out = data.try_as_plain_ram_mut()?;
                let out = out.as_slice_mut::<f32>()?;
                pack(group, &geo.bases, &geo.offsets, r, panel_len, out);
                values.push(Box::new(EagerPackedInput {
                    fact: PackedExoticFact {
                        format: Box::new(self.format.clone()),
                        k: self.k,
                        mn: positions.to_dim(),
                    },
                    packed: Arc::new(data.into_blob()?),
                    panel_bytes: panel_len * size_of::<f32>(),
                    mn: positions,
                }));
            }
        }
        let packed = PackedMatrixStorage::new_batched(&[geo.images, geo.groups], values);
        Ok(tvec!(packed.into_tensor(f32::datum_type()).into_tvalue()))
    }
}

impl TypedOp for Im2ColF32 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.fallback.output_facts(inputs)
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::internal::tract_linalg::MmmDispatch;
    use tract_onnx::tract_core::internal::tract_linalg::generic::mmm::generic_f32_4x4;
    use tract_onnx::tract_core::internal::tract_linalg::mmm::MatMatMul;
    use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec, PoolSpec};

    /// A convolution's geometry: input shape, kernel, padding, strides, dilations, groups.
    struct Case {
        shape: &'static [usize],
        kernel: [usize; 2],
        padding: PaddingSpec,
        strides: [usize; 2],
        dilations: [usize; 2],
        group: usize,
    }

    fn case(shape: &'static [usize], kernel: [usize; 2], padding: PaddingSpec) -> Case {
        Case {
            shape,
            kernel,
            padding,
            strides: [1, 1],
            dilations: [1, 1],
            group: 1,
        }
    }

    fn pads(before: [usize; 2], after: [usize; 2]) -> PaddingSpec {
        PaddingSpec::Explicit(before.into_iter().collect(), after.into_iter().collect())
    }

    /// The digits CNN's two convolutions, then every other kind of geometry this op takes.
    fn cases() -> Vec<Case> {
        vec![
            case(&[3, 1, 8, 8], [3, 3], pads([1, 1], [1, 1])),
            case(&[2, 5, 4, 4], [3, 3], pads([1, 1], [1, 1])),
            case(&[2, 3, 5, 7], [3, 3], PaddingSpec::Valid),
            case(&[1, 2, 6, 9], [1, 1], PaddingSpec::Valid),
            case(&[2, 2, 7, 5], [2, 3], pads([1, 0], [0, 2])),
            case(&[1, 3, 6, 6], [3, 3], PaddingSpec::SameUpper),
            case(&[3, 7, 7], [3, 3], pads([1, 1], [1, 1])),
            Case {
                strides: [2, 2],
                ..case(&[2, 4, 9, 6], [5, 5], pads([2, 2], [2, 2]))
            },
            Case {
                dilations: [2, 2],
                ..case(&[1, 2, 8, 8], [3, 3], pads([2, 2], [2, 2]))
            },
            Case {
                group: 2,
                ..case(&[2, 4, 5, 5], [3, 3], pads([1, 1], [1, 1]))
            },
        ]
    }

    impl Case {
        fn format(&self) -> DataFormat {
            match self.shape.len() {
                3 => DataFormat::CHW,
                _ => DataFormat::NCHW,
            }
        }

        fn channels(&self) -> usize {
            self.shape[self.shape.len() - 3]
        }

        fn spec(&self, output_channels: usize) -> PoolSpec {
            PoolSpec::new(
                self.format(),
                self.kernel.into_iter().collect(),
                self.padding.clone(),
                Some(self.dilations.into_iter().collect()),
                Some(self.strides.into_iter().collect()),
                self.channels(),
                output_channels,
            )
        }

        fn k(&self) -> usize {
            self.channels() / self.group * self.kernel[0] * self.kernel[1]
        }

        /// tract's op for this geometry (4 output channels), packing for `mmm`.
        fn tract(&self, mmm: Box<dyn MatMatMul>) -> Im2Col {
            let shape = f32::fact(self.shape).shape;
            Im2Col::new(self.spec(4), self.group, self.k(), &shape, mmm, 0).unwrap()
        }

        fn input(&self, seed: u64) -> Tensor {
            let count = self.shape.iter().product();
            Tensor::from_shape(self.shape, &crate::seeded_values(count, seed, 256)).unwrap()
        }
    }

    /// The packed values of each image and group.
    fn packed(out: &TValue) -> Vec<&EagerPackedInput> {
        let storage = out.try_storage_as::<PackedMatrixStorage>().unwrap();
        (storage.values().iter())
            .map(|v| v.downcast_ref::<EagerPackedInput>().unwrap())
            .collect()
    }

    #[test]
    fn packs_every_value_tract_packs_for_every_panel_width() {
        // Panels of 4 and 8 positions (8: Kiln's wasm kernel, and the two-quad path), and
        // whatever this machine's own kernel for the digits CNN's second convolution takes.
        let native = MmmDispatch::native().preferred_kernel(
            f32::datum_type(),
            Some(32),
            Some(144),
            Some(16),
        );
        let native = native.expect("a native float32 kernel");
        let kernels = [generic_f32_4x4.mmm(), crate::matmul::tests::ours(), native];
        for mmm in kernels {
            for (i, c) in cases().iter().enumerate() {
                let what = format!("{} kernel, case {i}: {:?}", mmm.name(), c.shape);
                let theirs = c.tract(mmm.clone());
                let ours = Im2ColF32::over(&theirs, &f32::fact(c.shape))
                    .unwrap()
                    .expect(&what);
                let x = c.input(i as u64);
                let expected = theirs.eval_out_of_plan(tvec!(x.clone().into_tvalue()));
                let got = ours.eval_out_of_plan(tvec!(x.into_tvalue()));
                let (expected, got) = (expected.unwrap().unwrap(), got.unwrap().unwrap());
                assert_eq!(expected[0].shape(), got[0].shape(), "{what}");
                let (expected, got) = (packed(&expected[0]), packed(&got[0]));
                assert_eq!(expected.len(), got.len(), "{what}");
                for (e, g) in expected.iter().zip(&got) {
                    assert_eq!((e.k(), e.mn, e.panel_bytes), (g.k(), g.mn, g.panel_bytes));
                    assert_eq!(e.packed.len(), g.packed.len(), "{what}");
                    let (mut want, mut have) = (vec![0f32; e.k()], vec![0f32; g.k()]);
                    for mn in 0..e.mn {
                        e.extract_at_mn_f32(mn, &mut want).unwrap();
                        g.extract_at_mn_f32(mn, &mut have).unwrap();
                        assert_eq!(want, have, "{what}, position {mn}");
                    }
                    // Lanes past the last position are zero (tract zeroes them too).
                    let r = g.fact.format.r();
                    let last = &g.packed[(g.mn - 1) / r * g.panel_bytes..];
                    let floats: Vec<f32> = (last.chunks_exact(4))
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    for (i, row) in floats.chunks(r).take(g.k()).enumerate() {
                        let tail = &row[(g.mn - 1) % r + 1..];
                        assert!(tail.iter().all(|&v| v == 0.0), "{what}: row {i} {row:?}");
                    }
                }
            }
        }
    }

    /// A model of one convolution over `c` with 6 output channels, batch symbolic or of 2,
    /// optimised (and sped up, or not).
    fn conv_model(c: &Case, symbolic: bool, ours: bool) -> TypedModel {
        let mut model = TypedModel::default();
        let mut shape: TVec<TDim> = c.shape.iter().map(|d| d.to_dim()).collect();
        if symbolic && c.shape.len() == 4 {
            shape[0] = model.symbols.sym("N").to_dim();
        }
        let x = model.add_source("x", f32::fact(shape.as_slice())).unwrap();
        let per_group = c.channels() / c.group;
        let kernel: Vec<f32> = crate::seeded_values(6 * c.k(), 11, 64);
        let kernel = Tensor::from_shape(&[6, per_group, c.kernel[0], c.kernel[1]], &kernel);
        let w = model.add_const("w", kernel.unwrap()).unwrap();
        let bias = Tensor::from_shape(&[6], &crate::seeded_values(6, 12, 64)).unwrap();
        let b = model.add_const("b", bias).unwrap();
        let conv = Conv {
            pool_spec: c.spec(6),
            kernel_fmt: KernelFormat::OIHW,
            group: c.group,
            q_params: None,
        };
        let y = model.wire_node("conv", conv, &[x, w, b]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let mut model = model.into_optimized().unwrap();
        if ours {
            speed_up(&mut model).unwrap();
        }
        model
    }

    #[test]
    fn speed_up_replaces_im2col_in_a_plan_and_the_convolution_answers_the_same() {
        let mut swaps = vec![];
        for (i, c) in cases().iter().enumerate() {
            for symbolic in [false, true] {
                let what = format!("case {i}: {:?}, symbolic batch: {symbolic}", c.shape);
                let count = |m: &TypedModel| {
                    let ops = m.nodes().iter();
                    let ours = ops.clone().filter(|n| n.op_is::<Im2ColF32>()).count();
                    (ours, ops.filter(|n| n.op_is::<Im2Col>()).count())
                };
                let (tracts, sped_up) = (
                    conv_model(c, symbolic, false),
                    conv_model(c, symbolic, true),
                );
                let (swapped, tract) = (count(&sped_up), count(&tracts));
                assert_eq!(swapped, (tract.1, 0), "{what}");
                swaps.push(swapped.0);
                let x = c.input(100 + i as u64);
                let run = |m: TypedModel| m.into_runnable().unwrap().run(tvec!(x.clone().into()));
                assert_eq!(run(sped_up).unwrap()[0], run(tracts).unwrap()[0], "{what}");
            }
        }
        // tract takes other paths for a 1×1 kernel and, mostly, for a single image of known
        // size (lazy im2col); each case in order, concrete batch then symbolic.
        assert_eq!(
            swaps,
            [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1]
        );
    }

    #[test]
    fn takes_only_float32_images_with_two_spatial_axes_channels_first() {
        let c = case(&[2, 3, 8, 8], [3, 3], pads([1, 1], [1, 1]));
        let mmm = generic_f32_4x4.mmm();
        let op = c.tract(mmm.clone());
        assert!(Im2ColF32::over(&op, &f32::fact(c.shape)).unwrap().is_some());
        assert!(Im2ColF32::over(&op, &f64::fact(c.shape)).unwrap().is_none());
        // Channels last.
        let mut nhwc = c.spec(4);
        nhwc.data_format = DataFormat::NHWC;
        let fact = f32::fact([2, 8, 8, 3]);
        let op = Im2Col::new(nhwc, 1, c.k(), &fact.shape, mmm.clone(), 0).unwrap();
        assert!(Im2ColF32::over(&op, &fact).unwrap().is_none());
        // One spatial axis.
        let spec = PoolSpec::new(
            DataFormat::NCHW,
            tvec!(3),
            PaddingSpec::Valid,
            None,
            None,
            3,
            4,
        );
        let fact = f32::fact([2, 3, 8]);
        let op = Im2Col::new(spec, 1, 9, &fact.shape, mmm, 0).unwrap();
        assert!(Im2ColF32::over(&op, &fact).unwrap().is_none());
    }

    #[test]
    fn an_input_of_another_rank_is_left_to_tract() {
        let c = case(&[2, 3, 8, 8], [3, 3], PaddingSpec::Valid);
        let op = c.tract(generic_f32_4x4.mmm());
        let ours = Im2ColF32::over(&op, &f32::fact(c.shape)).unwrap().unwrap();
        assert!(ours.geometry(&[2, 3, 8]).is_none());
        assert!(ours.geometry(&[2, 4, 8, 8]).is_none(), "k would differ");
        assert!(ours.geometry(&[2, 3, 2, 8]).is_none(), "no output rows");
        assert!(ours.geometry(&[5, 3, 8, 9]).is_some());
    }
}
