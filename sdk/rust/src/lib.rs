//! The Rust SDK for Kiln plugins.
//!
//! A Kiln plugin is a WebAssembly component that implements one of four roles defined by
//! the WIT package `kiln:plugin@0.1.0`: a **step**, a **validator**, a **model runner** or a
//! **tracker**. This crate gives plugin authors the contract's types with helpers
//! ([`Tensor`], [`Table`], [`Column`]), typed access to inputs and config ([`Inputs`],
//! [`Config`], [`Outputs`]), the host calls every plugin may make ([`log`], [`tracking`]),
//! and one export macro per role.
//!
//! A plugin is a `cdylib` crate built with `cargo build --target wasm32-wasip2`; the `.wasm`
//! file cargo writes is already a component that `kiln plugin run` can execute.
//!
//! # A step
//!
//! ```
//! use kiln_sdk::{Config, Descriptor, Error, Inputs, Outputs, Step, ValueKind};
//!
//! struct Scale;
//!
//! impl Step for Scale {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("scale", "Multiplies every element of a tensor")
//!             .input("x", ValueKind::Tensor, "the tensor to scale")
//!             .output("y", ValueKind::Tensor, "x times the factor")
//!             .config("factor", Some("2"), "the multiplier")
//!     }
//!
//!     fn run(mut inputs: Inputs, config: Config) -> Result<Outputs, Error> {
//!         let factor: f64 = config.parse_or("factor", 2.0)?;
//!         let x = inputs.tensor("x")?;
//!         let y: Vec<f64> = x.to_f64()?.iter().map(|v| v * factor).collect();
//!         kiln_sdk::tracking::log_metric("factor", factor, 0);
//!         Ok(Outputs::new().with("y", kiln_sdk::Tensor::from_f64(x.shape.clone(), &y)))
//!     }
//! }
//!
//! kiln_sdk::export_step!(Scale);
//! # fn main() {}
//! ```
//!
//! # A validator
//!
//! ```
//! use kiln_sdk::{Check, Config, Descriptor, Error, Inputs, Severity, Validator, ValueKind};
//!
//! struct NotEmpty;
//!
//! impl Validator for NotEmpty {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("not-empty", "Fails when a table has no rows")
//!             .input("table", ValueKind::Table, "the table to check")
//!     }
//!
//!     fn validate(mut inputs: Inputs, _config: Config) -> Result<Vec<Check>, Error> {
//!         let rows = inputs.table("table")?.num_rows();
//!         Ok(vec![Check::new("rows", rows > 0, Severity::Error)
//!             .observed(rows as f64)
//!             .detail(format!("{rows} rows"))])
//!     }
//! }
//!
//! kiln_sdk::export_validator!(NotEmpty);
//! # fn main() {}
//! ```
//!
//! # A model runner
//!
//! ```
//! use kiln_sdk::{Config, Descriptor, Error, Inputs, Model, ModelMetadata, ModelRunner, Outputs, ValueKind};
//!
//! struct Constant;
//! struct ConstantModel(f64);
//!
//! impl ModelRunner for Constant {
//!     type Model = ConstantModel;
//!     fn describe() -> Descriptor {
//!         Descriptor::new("constant", "Predicts the number stored in the artifact")
//!     }
//!     fn load(artifact: Vec<u8>, _config: Config) -> Result<ConstantModel, Error> {
//!         let text = String::from_utf8(artifact).map_err(|_| Error::invalid_input("artifact is not UTF-8"))?;
//!         let value = text.trim().parse().map_err(|_| Error::invalid_input("artifact is not a number"))?;
//!         Ok(ConstantModel(value))
//!     }
//! }
//!
//! impl Model for ConstantModel {
//!     fn metadata(&self) -> ModelMetadata {
//!         ModelMetadata::new()
//!             .input("rows", ValueKind::Table, "any table")
//!             .output("prediction", ValueKind::Tensor, "one value per row")
//!     }
//!     fn predict(&self, mut inputs: Inputs) -> Result<Outputs, Error> {
//!         let rows = inputs.table("rows")?.num_rows();
//!         let values = vec![self.0; rows];
//!         Ok(Outputs::new().with("prediction", kiln_sdk::Tensor::from_f64(vec![rows as u64], &values)))
//!     }
//! }
//!
//! kiln_sdk::export_model_runner!(Constant);
//! # fn main() {}
//! ```
//!
//! # A tracker
//!
//! ```
//! use kiln_sdk::{Config, Descriptor, Error, Event, Tracker};
//!
//! struct Printer;
//!
//! impl Tracker for Printer {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("printer", "Logs every metric it receives")
//!     }
//!     fn on_events(run_id: String, events: Vec<Event>, _config: Config) -> Result<(), Error> {
//!         for event in events {
//!             if let Event::Metric(m) = event {
//!                 kiln_sdk::log::info(&format!("{run_id}: {} = {} at step {}", m.key, m.value, m.step));
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! kiln_sdk::export_tracker!(Printer);
//! # fn main() {}
//! ```

mod io;
mod value;

wit_bindgen::generate!({
    world: "kiln:plugin/plugin-imports@0.1.0",
    path: "wit",
    additional_derives: [PartialEq],
});

/// The generated bindings of the contract, for code that needs them directly.
pub mod wit {
    pub use crate::kiln::plugin::log;
    pub use crate::kiln::plugin::tracking;
    pub use crate::kiln::plugin::types;
}

pub use io::{Config, Inputs, Outputs};
pub use wit::types::{
    Check, Column, ColumnData, ConfigKey, Descriptor, Dtype, Error, ErrorKind, Event, Metric,
    ModelMetadata, NamedValue, Port, Severity, Table, Tensor, Value, ValueKind,
};

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

include!(concat!(env!("OUT_DIR"), "/macros.rs"));

/// A pipeline step: named inputs and config in, named outputs out.
pub trait Step {
    /// The step's declared inputs, outputs and config keys.
    fn describe() -> Descriptor;
    /// Runs the step once.
    fn run(inputs: Inputs, config: Config) -> Result<Outputs, Error>;
}

/// A validator: checks its inputs and reports each check.
pub trait Validator {
    /// The validator's declared inputs and config keys.
    fn describe() -> Descriptor;
    /// Runs every check. A failed check is a result, not an [`Error`].
    fn validate(inputs: Inputs, config: Config) -> Result<Vec<Check>, Error>;
}

/// A model runner: loads a model once from its artifact, then predicts many times.
pub trait ModelRunner {
    /// The loaded model.
    type Model: Model;
    /// The runner's declared config keys.
    fn describe() -> Descriptor;
    /// Builds a model from its artifact bytes.
    fn load(artifact: Vec<u8>, config: Config) -> Result<Self::Model, Error>;
}

/// A loaded model.
pub trait Model: 'static {
    /// The model's input and output signature.
    fn metadata(&self) -> ModelMetadata;
    /// Predicts for a batch of inputs.
    fn predict(&self, inputs: Inputs) -> Result<Outputs, Error>;
}

/// A tracker: receives the events of a run.
pub trait Tracker {
    /// The tracker's declared config keys.
    fn describe() -> Descriptor;
    /// Receives a batch of events of one run.
    fn on_events(run_id: String, events: Vec<Event>, config: Config) -> Result<(), Error>;
}

/// Levelled logging into the host's log, tagged with this plugin's name.
pub mod log {
    use crate::wit::log::{Level, log};

    /// Logs at `trace` level.
    pub fn trace(message: &str) {
        log(Level::Trace, message);
    }
    /// Logs at `debug` level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Logs at `info` level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Logs at `warn` level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Logs at `error` level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// Tracking of the current run (metrics, params, tags), routed by the host.
pub mod tracking {
    pub use crate::wit::tracking::{log_metric, log_param, set_tag};
}
