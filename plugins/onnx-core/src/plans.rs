//! The plans a model runs with, kept between calls.
//!
//! One plan, optimised with the batch dimension symbolic, serves every batch size. tract
//! picks its kernels (and folds away shape arithmetic) better when every dimension is
//! known, which halves a small batch's latency, so a batch size that comes back gets a plan
//! of its own, optimised for that size. A size seen once (the last, ragged batch of a job)
//! keeps using the symbolic plan. At most [`MAX_CONCRETE`] such plans are kept, the least
//! recently used going first: each holds its own packed copy of the weights.
//!
//! Each plan keeps its tract state, so a call does not build one.

use std::collections::HashMap;

use tract_onnx::prelude::*;

/// Concretised plans kept at most.
pub const MAX_CONCRETE: usize = 4;

/// Calls at one batch size, on the symbolic plan, before it gets a plan of its own.
const CONCRETISE_AFTER: u32 = 2;

/// Batch sizes counted at most before the counts start again.
const MAX_COUNTED: usize = 64;

/// tract's optimisation, then Kiln's own faster ops where they apply.
fn optimise(decluttered: TypedModel) -> TractResult<Arc<TypedRunnableModel>> {
    let mut optimised = decluttered.into_optimized()?;
    crate::pool::speed_up(&mut optimised)?;
    crate::im2col::speed_up(&mut optimised)?;
    optimised.into_runnable()
}

/// A runnable plan and its state, made on first use and after a failed run.
struct Runner {
    plan: Arc<TypedRunnableModel>,
    state: Option<TypedSimpleState>,
}

impl Runner {
    fn new(plan: Arc<TypedRunnableModel>) -> Runner {
        Runner { plan, state: None }
    }

    fn run(&mut self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let state = match &mut self.state {
            Some(s) => s,
            empty => empty.insert(self.plan.spawn()?),
        };
        let out = state.run(inputs);
        if out.is_err() {
            // A failed turn may leave values behind; the next call starts from a new state.
            self.state = None;
        }
        out
    }
}

/// Every plan of one model.
pub(crate) struct Plans {
    /// The decluttered model with the batch symbolic, to concretise; `None` when the model
    /// has no batch dimension.
    model: Option<(TypedModel, Symbol)>,
    symbolic: Runner,
    /// Most recently used last.
    concrete: Vec<(u64, Runner)>,
    seen: HashMap<u64, u32>,
}

impl Plans {
    /// `decluttered` is the model before optimisation; `batch` whether its first input
    /// dimension is the symbol `N`.
    pub(crate) fn new(decluttered: TypedModel, batch: bool) -> TractResult<Plans> {
        let model = batch.then(|| {
            let n = decluttered.symbols.sym(crate::signature::BATCH);
            (decluttered.clone(), n)
        });
        let symbolic = optimise(decluttered)?;
        Ok(Plans {
            model,
            symbolic: Runner::new(symbolic),
            concrete: Vec::new(),
            seen: HashMap::new(),
        })
    }

    /// Runs the plan for `batch` (the inputs' batch size, if the model has one).
    pub(crate) fn run(
        &mut self,
        batch: Option<u64>,
        inputs: TVec<TValue>,
    ) -> TractResult<TVec<TValue>> {
        let (Some(b), Some((model, n))) = (batch, &self.model) else {
            return self.symbolic.run(inputs);
        };
        if let Some(i) = self.concrete.iter().position(|(size, _)| *size == b) {
            let last = self.concrete.len() - 1;
            self.concrete[i..].rotate_left(1);
            return self.concrete[last].1.run(inputs);
        }
        if self.seen.len() >= MAX_COUNTED {
            self.seen.clear();
        }
        let count = self.seen.entry(b).or_default();
        *count += 1;
        if *count < CONCRETISE_AFTER {
            return self.symbolic.run(inputs);
        }
        self.seen.remove(&b);
        let subs = HashMap::from([(n.clone(), TDim::Val(b as i64))]);
        let concretised = model.set_symbols(&subs).and_then(optimise);
        let Ok(plan) = concretised else {
            // The symbolic plan answers for every size; this model keeps to it.
            self.model = None;
            return self.symbolic.run(inputs);
        };
        if self.concrete.len() == MAX_CONCRETE {
            self.concrete.remove(0);
        }
        self.concrete.push((b, Runner::new(plan)));
        let last = self.concrete.len() - 1;
        self.concrete[last].1.run(inputs)
    }

    /// The batch sizes with a plan of their own, least recently used first.
    #[cfg(test)]
    pub(crate) fn concrete_sizes(&self) -> Vec<u64> {
        self.concrete.iter().map(|(b, _)| *b).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::math;

    /// `y = x + [1, 2, 3]` for `x: f32 [N, 3]`.
    fn plans() -> Plans {
        let mut model = TypedModel::default();
        let n = model.symbols.sym(crate::signature::BATCH);
        let x = model
            .add_source("x", f32::fact([n.to_dim(), 3.to_dim()]))
            .unwrap();
        let c = model.add_const("c", tensor2(&[[1f32, 2., 3.]])).unwrap();
        let y = model.wire_node("y", math::add(), &[x, c]).unwrap();
        model.select_output_outlets(&y).unwrap();
        Plans::new(model.into_decluttered().unwrap(), true).unwrap()
    }

    fn run(p: &mut Plans, rows: usize) -> Vec<f32> {
        let x = Tensor::from_shape(&[rows, 3], &vec![1f32; rows * 3]).unwrap();
        let out = p.run(Some(rows as u64), tvec!(x.into())).unwrap();
        crate::floats(&out[0]).to_vec()
    }

    #[test]
    fn a_batch_size_that_recurs_gets_its_own_plan_and_answers_the_same() {
        let mut p = plans();
        let once = run(&mut p, 2);
        assert!(
            p.concrete_sizes().is_empty(),
            "a size seen once keeps the symbolic plan"
        );
        let twice = run(&mut p, 2);
        assert_eq!(p.concrete_sizes(), vec![2]);
        let thrice = run(&mut p, 2);
        assert_eq!(once, vec![2., 3., 4., 2., 3., 4.]);
        assert_eq!(once, twice);
        assert_eq!(once, thrice);
    }

    #[test]
    fn at_most_max_concrete_plans_are_kept_least_recently_used_going_first() {
        let mut p = plans();
        for rows in 1..=MAX_CONCRETE + 1 {
            run(&mut p, rows);
            run(&mut p, rows);
        }
        let expected: Vec<u64> = (2..=MAX_CONCRETE as u64 + 1).collect();
        assert_eq!(p.concrete_sizes(), expected);
        // Using the oldest makes it the newest.
        assert_eq!(run(&mut p, 2), [2., 3., 4.].repeat(2));
        assert_eq!(p.concrete_sizes()[MAX_CONCRETE - 1], 2);
        assert_eq!(p.concrete_sizes()[0], 3);
    }

    #[test]
    fn a_failed_run_leaves_the_next_one_working() {
        let mut p = plans();
        run(&mut p, 4);
        run(&mut p, 4);
        let wrong = Tensor::from_shape(&[4, 2], &[0f32; 8]).unwrap();
        assert!(p.run(Some(4), tvec!(wrong.into())).is_err());
        assert_eq!(run(&mut p, 4), [2., 3., 4.].repeat(4));
    }
}
