//! Numerics shared by Kiln's standard plugins, free of any WIT types so they can be
//! unit-tested natively: the linear-model artifact format, least squares, L2-penalised
//! logistic regression by Newton's method, prediction and evaluation metrics.

pub mod linear;
pub mod logistic;
pub mod metrics;
pub mod model;

pub use model::{ModelArtifact, ModelKind};

/// Column-major design data: `columns[j][i]` is feature j of row i.
pub type Columns = Vec<Vec<f64>>;
