//! An 8×8 float32 matrix-product kernel for tract in wasm, shaped for the code Cranelift
//! makes of it.
//!
//! tract's own wasm kernel (8×8 too) takes one step of k per turn of its inner loop. Under a
//! deadline wasmtime checks the epoch at every loop head, and the check may call out to the
//! host, which clobbers every vector register: so Cranelift loads and stores all sixteen
//! accumulators around each head, at every step. This kernel takes eight steps per turn,
//! each in a block of its own, so those loads and stores come once per eight steps; inside
//! a turn Cranelift keeps about half the accumulators in registers and the rest on the
//! stack. (A 4×8 tile, whose eight accumulators all fit, measured slower on the digits CNN:
//! tract's work per tile, doubled with the tiles, ate the gain.)
//!
//! It reaches tract through tract's public extension points: a `DynKernel` registered as an
//! `MmmRoutine`, and an `MmmTier` above tract's wasm tier that names it for every float32
//! matrix product with more than one column (matrix-vector products keep tract's M×1
//! kernels). It is registered only in a wasm32 build with SIMD128; elsewhere it is built for
//! its tests alone, over a portable four-lane type, and checked against tract's generic
//! kernel through tract's own tiling.

use tract_onnx::prelude::DatumType;
use tract_onnx::tract_core::internal::tract_linalg::Scaler;
use tract_onnx::tract_core::internal::tract_linalg::isa::IsaSet;
use tract_onnx::tract_core::internal::tract_linalg::mmm::{FusedKerSpec, Query, Suitable};

/// Rows of the tile (of A's panel).
const MR: usize = 8;
/// Columns of the tile (of B's panel): two vectors.
const NR: usize = 8;
/// The name tract knows the kernel by.
const NAME: &str = "kiln_wasm_f32_8x8";

/// Four float32 lanes: what the kernel needs of a 128-bit vector.
pub(crate) trait Quad: Copy {
    fn splat(x: f32) -> Self;
    /// Four floats from `p`, which needs no alignment.
    ///
    /// # Safety
    /// `p` must be valid for reading 16 bytes.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` must be valid for writing 16 bytes.
    unsafe fn store(self, p: *mut f32);
    fn from_array(lanes: [f32; 4]) -> Self;
    fn to_array(self) -> [f32; 4];
    /// Lane `i` in every lane (`i` is a constant wherever this is called).
    fn broadcast(self, i: usize) -> Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    /// `other < self ? other : self`, lane by lane.
    fn pmin(self, other: Self) -> Self;
    /// `self < other ? other : self`, lane by lane.
    fn pmax(self, other: Self) -> Self;
    /// `self > 0 ? self : alpha * self`, lane by lane.
    fn leaky(self, alpha: Self) -> Self;
}

/// The accumulators: row `r`'s columns 0–3 in `[r][0]`, 4–7 in `[r][1]`.
type Tile<V> = [[V; 2]; MR];

#[inline(always)]
fn each<V: Quad>(ab: &mut Tile<V>, f: impl Fn(V) -> V) {
    for v in ab.iter_mut().flatten() {
        *v = f(*v);
    }
}

/// `f(acc, row value)` for each accumulator, with row `r`'s value from `rows[r]`.
///
/// # Safety
/// `rows` must be valid for reading `MR` floats.
#[inline(always)]
unsafe fn per_row<V: Quad>(ab: &mut Tile<V>, rows: *const f32, f: impl Fn(V, V) -> V) {
    for (r, row) in ab.iter_mut().enumerate() {
        // SAFETY: r < MR.
        let s = V::splat(unsafe { *rows.add(r) });
        for v in row {
            *v = f(*v, s);
        }
    }
}

/// `f(acc, column values)` for each accumulator, the columns from `cols[0..NR]`.
///
/// # Safety
/// `cols` must be valid for reading `NR` floats.
#[inline(always)]
unsafe fn per_col<V: Quad>(ab: &mut Tile<V>, cols: *const f32, f: impl Fn(V, V) -> V) {
    // SAFETY: NR = 8 floats.
    let c = unsafe { [V::load(cols), V::load(cols.add(4))] };
    for row in ab.iter_mut() {
        for (v, c) in row.iter_mut().zip(c) {
            *v = f(*v, c);
        }
    }
}

/// The kernel: runs tract's list of tile operations, up to `Done`, on one 8×8 tile.
/// Returns 0, or 1 for an operation it cannot do (an output or addend that is not float32),
/// which tract reports as an error.
///
/// # Safety
/// `spec` must be a list tract made for this kernel: ending with `Done`, its pointers valid
/// for the tile and panels it names.
#[inline(always)]
pub(crate) unsafe fn kernel<V: Quad>(mut spec: *const FusedKerSpec<f32>) -> isize {
    let zero = V::splat(0.0);
    let mut ab: Tile<V> = [[zero; 2]; MR];
    // SAFETY: every pointer below comes from tract's list, valid as the function requires.
    unsafe {
        while !spec.is_null() {
            match *spec {
                FusedKerSpec::Done => break,
                FusedKerSpec::Clear => ab = [[zero; 2]; MR],
                FusedKerSpec::LoadTile(_col_major, row_major) => {
                    for (r, row) in ab.iter_mut().enumerate() {
                        row[0] = V::load(row_major.add(r * NR));
                        row[1] = V::load(row_major.add(r * NR + 4));
                    }
                }
                // tract's generic kernel: min and max take the scalar first, as `pmin`/`pmax`
                // with the accumulator first fold them; Sub is `scalar - acc`, SubF the other.
                FusedKerSpec::ScalarMin(x) => each(&mut ab, |v| v.pmin(V::splat(x))),
                FusedKerSpec::ScalarMax(x) => each(&mut ab, |v| v.pmax(V::splat(x))),
                FusedKerSpec::ScalarAdd(x) => each(&mut ab, |v| v.add(V::splat(x))),
                FusedKerSpec::ScalarMul(x) => each(&mut ab, |v| v.mul(V::splat(x))),
                FusedKerSpec::ScalarSub(x) => each(&mut ab, |v| V::splat(x).sub(v)),
                FusedKerSpec::ScalarSubF(x) => each(&mut ab, |v| v.sub(V::splat(x))),
                FusedKerSpec::LeakyRelu(alpha) => each(&mut ab, |v| v.leaky(V::splat(alpha))),
                FusedKerSpec::PerRowMin(p) => per_row(&mut ab, p, |v, s| v.pmin(s)),
                FusedKerSpec::PerRowMax(p) => per_row(&mut ab, p, |v, s| v.pmax(s)),
                FusedKerSpec::PerRowAdd(p) => per_row(&mut ab, p, |v, s| v.add(s)),
                FusedKerSpec::PerRowMul(p) => per_row(&mut ab, p, |v, s| v.mul(s)),
                FusedKerSpec::PerRowSub(p) => per_row(&mut ab, p, |v, s| s.sub(v)),
                FusedKerSpec::PerRowSubF(p) => per_row(&mut ab, p, |v, s| v.sub(s)),
                FusedKerSpec::PerColMin(p) => per_col(&mut ab, p, |v, c| v.pmin(c)),
                FusedKerSpec::PerColMax(p) => per_col(&mut ab, p, |v, c| v.pmax(c)),
                FusedKerSpec::PerColAdd(p) => per_col(&mut ab, p, |v, c| v.add(c)),
                FusedKerSpec::PerColMul(p) => per_col(&mut ab, p, |v, c| v.mul(c)),
                FusedKerSpec::PerColSub(p) => per_col(&mut ab, p, |v, c| c.sub(v)),
                FusedKerSpec::PerColSubF(p) => per_col(&mut ab, p, |v, c| v.sub(c)),
                // A float accumulator takes the quantisation steps as plain scaling, as tract's
                // float kernels do.
                FusedKerSpec::QScale(shift, policy, mult) => {
                    let scale = Scaler::from_fuse_params(shift, policy, mult).scale;
                    each(&mut ab, |v| v.mul(V::splat(scale)))
                }
                FusedKerSpec::RoundingShiftRight(shift, _) => {
                    let scale = 2f32.powi(-(shift as i32));
                    each(&mut ab, |v| v.mul(V::splat(scale)))
                }
                FusedKerSpec::ShiftLeft(shift) => {
                    let scale = 2f32.powi(shift as i32);
                    each(&mut ab, |v| v.mul(V::splat(scale)))
                }
                FusedKerSpec::AddRowColProducts(rows, cols) => {
                    let c = [V::load(cols), V::load(cols.add(4))];
                    for (r, row) in ab.iter_mut().enumerate() {
                        let s = V::splat(*rows.add(r));
                        row[0] = row[0].add(s.mul(c[0]));
                        row[1] = row[1].add(s.mul(c[1]));
                    }
                }
                FusedKerSpec::AddUnicast(tile) => {
                    if tile.item_size != 4 {
                        return 1;
                    }
                    for (r, row) in ab.iter_mut().enumerate() {
                        let at = tile.ptr.offset(tile.row_byte_stride * r as isize);
                        for (h, v) in row.iter_mut().enumerate() {
                            let lanes = if tile.col_byte_stride == 4 {
                                V::load(at.cast::<f32>().add(4 * h))
                            } else {
                                V::from_array(std::array::from_fn(|l| {
                                    let c = (4 * h + l) as isize;
                                    *at.offset(tile.col_byte_stride * c).cast::<f32>()
                                }))
                            };
                            *v = v.add(lanes);
                        }
                    }
                }
                FusedKerSpec::Store(tile) => {
                    if tile.item_size != 4 {
                        return 1;
                    }
                    for (r, row) in ab.iter().enumerate() {
                        let at = tile.ptr.offset(tile.row_byte_stride * r as isize);
                        for (h, v) in row.iter().enumerate() {
                            if tile.col_byte_stride == 4 {
                                v.store(at.cast::<f32>().add(4 * h));
                            } else {
                                for (l, x) in v.to_array().into_iter().enumerate() {
                                    let c = (4 * h + l) as isize;
                                    *at.offset(tile.col_byte_stride * c).cast::<f32>() = x;
                                }
                            }
                        }
                    }
                }
                // Only the one packing is declared (A and B packed float32), so `packing`
                // needs no reading.
                FusedKerSpec::AddMatMul { k, pa, pb, .. } => {
                    ab = add_mat_mul(ab, k, pa.cast(), pb.cast())
                }
            }
            spec = spec.add(1);
        }
    }
    0
}

/// `ab + A·B` over `k` steps: A packed as `k` columns of `MR` floats, B as `k` rows of `NR`.
///
/// # Safety
/// `a` must be valid for reading `MR·k` floats and `b` for `NR·k`.
#[inline(always)]
unsafe fn add_mat_mul<V: Quad>(ab: Tile<V>, k: usize, a: *const f32, b: *const f32) -> Tile<V> {
    // The accumulators as a local copy, so that the compiler keeps them in registers rather
    // than storing the tile back to memory at every step.
    let mut c = ab;
    macro_rules! step {
        ($i:expr) => {{
            let i = $i;
            // SAFETY: i < k. (A's step is MR / 4 vectors.)
            let (a, b0, b1) = unsafe {
                (
                    std::array::from_fn::<V, { MR / 4 }, _>(|v| V::load(a.add(MR * i + 4 * v))),
                    V::load(b.add(NR * i)),
                    V::load(b.add(NR * i + 4)),
                )
            };
            for (r, row) in c.iter_mut().enumerate() {
                let s = a[r / 4].broadcast(r % 4);
                row[0] = row[0].add(s.mul(b0));
                row[1] = row[1].add(s.mul(b1));
            }
        }};
    }
    // Eight steps per turn: Cranelift stores and reloads the accumulators around each loop
    // head (its epoch check may call the host), so once per eight steps. Each step ends its
    // own block (the exit test): in one block LLVM would hoist the loads of the whole turn
    // to its top, far more live vectors than there are registers.
    let mut i = 0;
    'turns: while i < k {
        macro_rules! step_or_stop {
            () => {
                step!(i);
                i += 1;
                if i == k {
                    break 'turns;
                }
            };
        }
        step_or_stop!();
        step_or_stop!();
        step_or_stop!();
        step_or_stop!();
        step_or_stop!();
        step_or_stop!();
        step_or_stop!();
        step!(i);
        i += 1;
    }
    c
}

/// The dispatch rule: this kernel for every float32 product with more than one column.
fn preferred(
    _isa: &IsaSet,
    accumulator: DatumType,
    query: &Query,
    _suitable: &[Suitable],
) -> Option<&'static str> {
    (accumulator == DatumType::F32 && query.n != Some(1)).then_some(NAME)
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use std::arch::wasm32::*;
    use std::sync::LazyLock;

    use tract_onnx::tract_core::internal::inventory;
    use tract_onnx::tract_core::internal::tract_linalg::isa::Arch;
    use tract_onnx::tract_core::internal::tract_linalg::mmm::{DynKernel, FusedKerSpec};
    use tract_onnx::tract_core::internal::tract_linalg::mmm_routines::MmmRoutine;
    use tract_onnx::tract_core::internal::tract_linalg::mmm_tiers::MmmTier;
    use tract_onnx::tract_core::internal::tract_linalg::pack::Packing;

    use super::{MR, NAME, NR, Quad};

    impl Quad for v128 {
        #[inline(always)]
        fn splat(x: f32) -> Self {
            f32x4_splat(x)
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            // SAFETY: as the caller promises; v128 loads need no alignment.
            unsafe { v128_load(p.cast()) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            // SAFETY: as the caller promises.
            unsafe { v128_store(p.cast(), self) }
        }
        #[inline(always)]
        fn from_array(l: [f32; 4]) -> Self {
            f32x4(l[0], l[1], l[2], l[3])
        }
        #[inline(always)]
        fn to_array(self) -> [f32; 4] {
            [
                f32x4_extract_lane::<0>(self),
                f32x4_extract_lane::<1>(self),
                f32x4_extract_lane::<2>(self),
                f32x4_extract_lane::<3>(self),
            ]
        }
        #[inline(always)]
        fn broadcast(self, i: usize) -> Self {
            match i {
                0 => i32x4_shuffle::<0, 0, 0, 0>(self, self),
                1 => i32x4_shuffle::<1, 1, 1, 1>(self, self),
                2 => i32x4_shuffle::<2, 2, 2, 2>(self, self),
                _ => i32x4_shuffle::<3, 3, 3, 3>(self, self),
            }
        }
        #[inline(always)]
        fn add(self, other: Self) -> Self {
            f32x4_add(self, other)
        }
        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            f32x4_sub(self, other)
        }
        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            f32x4_mul(self, other)
        }
        #[inline(always)]
        fn pmin(self, other: Self) -> Self {
            f32x4_pmin(self, other)
        }
        #[inline(always)]
        fn pmax(self, other: Self) -> Self {
            f32x4_pmax(self, other)
        }
        #[inline(always)]
        fn leaky(self, alpha: Self) -> Self {
            let positive = f32x4_gt(self, f32x4_splat(0.0));
            v128_bitselect(self, f32x4_mul(alpha, self), positive)
        }
    }

    /// The kernel as tract calls it.
    unsafe fn run(spec: &[FusedKerSpec<f32>]) -> isize {
        // SAFETY: tract hands this kernel lists made for it.
        unsafe { super::kernel::<v128>(spec.as_ptr()) }
    }

    static KERNEL: LazyLock<DynKernel<MR, NR, f32>> = LazyLock::new(|| {
        let mut kernel = DynKernel::new(NAME, run, f32::packing(MR), f32::packing(NR));
        kernel.arch = Some(Arch::Wasm32Simd128);
        kernel
    });

    inventory::submit! {
        MmmRoutine { make: || KERNEL.mmm() }
    }

    // Above tract's own wasm tier (precedence 1), which it leaves every query it declines.
    inventory::submit! {
        MmmTier {
            arch: Some(Arch::Wasm32Simd128),
            precedence: 2,
            name: "kiln-wasm-f32-8x8",
            applies: |_| true,
            preferred: super::preferred,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::tract_linalg::BinOp;
    use tract_onnx::tract_core::internal::tract_linalg::generic::mmm::generic_f32_4x4;
    use tract_onnx::tract_core::internal::tract_linalg::mmm::{
        AsInputValue, DynKernel, FusedSpec, MatMatMul, RoundingPolicy,
    };
    use tract_onnx::tract_core::internal::tract_linalg::pack::{PackedFormat, Packing};

    /// Four lanes in plain Rust, lane by lane as the wasm instructions define them.
    #[derive(Clone, Copy)]
    struct Lanes([f32; 4]);

    impl Lanes {
        fn zip(self, o: Self, f: impl Fn(f32, f32) -> f32) -> Self {
            Lanes(std::array::from_fn(|i| f(self.0[i], o.0[i])))
        }
    }

    impl Quad for Lanes {
        fn splat(x: f32) -> Self {
            Lanes([x; 4])
        }
        unsafe fn load(p: *const f32) -> Self {
            Lanes(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
        }
        unsafe fn store(self, p: *mut f32) {
            unsafe { p.cast::<[f32; 4]>().write_unaligned(self.0) }
        }
        fn from_array(lanes: [f32; 4]) -> Self {
            Lanes(lanes)
        }
        fn to_array(self) -> [f32; 4] {
            self.0
        }
        fn broadcast(self, i: usize) -> Self {
            Lanes([self.0[i]; 4])
        }
        fn add(self, o: Self) -> Self {
            self.zip(o, |a, b| a + b)
        }
        fn sub(self, o: Self) -> Self {
            self.zip(o, |a, b| a - b)
        }
        fn mul(self, o: Self) -> Self {
            self.zip(o, |a, b| a * b)
        }
        fn pmin(self, o: Self) -> Self {
            self.zip(o, |a, b| if b < a { b } else { a })
        }
        fn pmax(self, o: Self) -> Self {
            self.zip(o, |a, b| if a < b { b } else { a })
        }
        fn leaky(self, alpha: Self) -> Self {
            self.zip(alpha, |x, a| if x > 0.0 { x } else { a * x })
        }
    }

    unsafe fn run_lanes(spec: &[FusedKerSpec<f32>]) -> isize {
        unsafe { kernel::<Lanes>(spec.as_ptr()) }
    }

    /// Kiln's kernel over portable lanes, as tract's dispatch sees it.
    pub(crate) fn ours() -> Box<dyn MatMatMul> {
        DynKernel::<MR, NR, f32>::new(NAME, run_lanes, f32::packing(MR), f32::packing(NR)).mmm()
    }

    fn tensor(shape: &[usize], seed: u64) -> Tensor {
        let count = shape.iter().product();
        Tensor::from_shape(shape, &crate::seeded_values(count, seed, 1024)).unwrap()
    }

    /// The operations tract fuses into a product, after the product itself.
    #[derive(Debug)]
    enum Then {
        Nothing,
        /// Bias per row, then ReLU: a convolution's epilogue.
        BiasRelu,
        PerCol(BinOp),
        PerRow(BinOp),
        Scalar(BinOp),
        LeakyRelu,
        Unicast,
        RowColProducts,
        Scale,
    }

    /// `C = A·B` (`m`×`k` by `k`×`n`) followed by `then`, through tract's tiling with `mmm`.
    fn product(mmm: &dyn MatMatMul, (m, k, n): (usize, usize, usize), then: &Then) -> Tensor {
        let a = tensor(&[m, k], 1);
        let b = tensor(&[k, n], 2);
        let (pack_a, pack_b) = &mmm.packings()[0];
        let pack_a = pack_a.downcast_ref::<PackedFormat>().unwrap();
        let pack_b = pack_b.downcast_ref::<PackedFormat>().unwrap();
        let pa = pack_a.pack_tensor(&a, 1, 0).unwrap();
        let pb = pack_b.pack_tensor(&b, 0, 1).unwrap();
        let rows = tensor(&[m], 3);
        let cols = tensor(&[n], 4);
        let scalar = tensor(&[], 5);
        let alpha = tensor(&[], 6);
        let addend = tensor(&[m, n], 7);
        let zero = Tensor::from(0f32);
        let mut c = Tensor::zero::<f32>(&[m, n]).unwrap();
        unsafe {
            let store = mmm.c_view(Some(0), Some(1)).wrap(&c.view_mut());
            let unicast = mmm.c_view(Some(0), Some(1)).wrap(&addend.view());
            let mut ops = vec![FusedSpec::AddMatMul {
                a: AsInputValue::Borrowed(&*pa),
                b: AsInputValue::Borrowed(&*pb),
                packing: 0,
            }];
            match then {
                Then::Nothing => {}
                Then::BiasRelu => {
                    ops.push(FusedSpec::BinPerRow(rows.view(), BinOp::Add));
                    ops.push(FusedSpec::BinScalar(&zero, BinOp::Max));
                }
                Then::PerCol(op) => ops.push(FusedSpec::BinPerCol(cols.view(), *op)),
                Then::PerRow(op) => ops.push(FusedSpec::BinPerRow(rows.view(), *op)),
                Then::Scalar(op) => ops.push(FusedSpec::BinScalar(&scalar, *op)),
                Then::LeakyRelu => ops.push(FusedSpec::LeakyRelu(&alpha)),
                Then::Unicast => ops.push(FusedSpec::AddUnicast(unicast)),
                Then::RowColProducts => ops.push(FusedSpec::AddRowColProducts(&rows, &cols)),
                Then::Scale => ops.push(FusedSpec::QScale(2, RoundingPolicy::Even, 1 << 30)),
            }
            ops.push(FusedSpec::Store(store));
            mmm.run(m, n, &ops).unwrap();
        }
        c
    }

    fn same(ours: &Tensor, reference: &Tensor, what: &str) {
        let (x, y) = (crate::floats(ours), crate::floats(reference));
        assert_eq!(x.len(), y.len(), "{what}");
        for (i, (x, y)) in x.iter().zip(y).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{what} at {i}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn products_match_tracts_generic_kernel_on_whole_and_partial_tiles() {
        let ours = ours();
        let generic = generic_f32_4x4.mmm();
        // Tiles whole, partial in rows, in columns, in both; one step of k and many; a
        // convolution's shape (8 channels of 3×3 patches over 26×26 positions).
        for mkn in [
            (4, 1, 8),
            (8, 16, 16),
            (5, 3, 9),
            (3, 7, 5),
            (13, 27, 30),
            (1, 2, 17),
            (8, 9, 676),
            (64, 64, 64),
        ] {
            same(
                &product(&*ours, mkn, &Then::Nothing),
                &product(&*generic, mkn, &Then::Nothing),
                &format!("{mkn:?}"),
            );
        }
    }

    #[test]
    fn every_fused_operation_matches_tracts_generic_kernel() {
        let ours = ours();
        let generic = generic_f32_4x4.mmm();
        let ops = [
            BinOp::Min,
            BinOp::Max,
            BinOp::Add,
            BinOp::Mul,
            BinOp::Sub,
            BinOp::SubF,
        ];
        let mut thens = vec![
            Then::BiasRelu,
            Then::LeakyRelu,
            Then::Unicast,
            Then::RowColProducts,
            Then::Scale,
        ];
        for op in ops {
            thens.extend([Then::PerCol(op), Then::PerRow(op), Then::Scalar(op)]);
        }
        for then in &thens {
            for mkn in [(8, 5, 16), (6, 4, 11)] {
                let what = format!("{mkn:?} then {then:?}");
                same(
                    &product(&*ours, mkn, then),
                    &product(&*generic, mkn, then),
                    &what,
                );
            }
        }
    }

    #[test]
    fn a_tile_of_another_type_is_refused_not_miswritten() {
        let mut c = [0u16; MR * NR];
        let tile = tract_onnx::tract_core::internal::tract_linalg::mmm::OutputStoreKer {
            ptr: c.as_mut_ptr().cast(),
            row_byte_stride: 2 * NR as isize,
            col_byte_stride: 2,
            item_size: 2,
        };
        let spec = [
            FusedKerSpec::Clear,
            FusedKerSpec::Store(tile),
            FusedKerSpec::Done,
        ];
        assert_eq!(unsafe { run_lanes(&spec) }, 1);
        assert!(c.iter().all(|&x| x == 0));
    }

    #[test]
    fn dispatch_names_it_for_products_not_for_matrix_vector_ones() {
        let isa = IsaSet::of_arch(
            tract_onnx::tract_core::internal::tract_linalg::isa::Arch::Wasm32Simd128,
        );
        for (n, expected) in [(Some(64), Some(NAME)), (None, Some(NAME)), (Some(1), None)] {
            let query = Query::plain(DatumType::F32, Some(16), Some(9), n);
            assert_eq!(
                preferred(&isa, DatumType::F32, &query, &[]),
                expected,
                "n = {n:?}"
            );
        }
        let query = Query::plain(DatumType::I32, Some(16), Some(9), Some(64));
        assert_eq!(preferred(&isa, DatumType::I32, &query, &[]), None);
    }
}
