//! Typed access to a plugin's inputs and config, and a builder for its outputs.

use std::str::FromStr;

use crate::{Error, NamedValue, Table, Tensor, Value};

/// The named inputs a plugin was called with. Values are taken out by name, so a
/// plugin owns them without copying.
#[derive(Debug, Clone, Default)]
pub struct Inputs(Vec<NamedValue>);

impl Inputs {
    /// Wraps the inputs the host passed.
    pub fn new(values: Vec<NamedValue>) -> Self {
        Inputs(values)
    }

    /// The names of the inputs still present, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|v| v.name.as_str())
    }

    /// Borrows an input by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|v| v.name == name).map(|v| &v.value)
    }

    /// Takes an input by name, if it was given.
    pub fn take_opt(&mut self, name: &str) -> Option<Value> {
        let at = self.0.iter().position(|v| v.name == name)?;
        Some(self.0.swap_remove(at).value)
    }

    /// Takes an input by name; a missing input is an `invalid-input` error.
    pub fn take(&mut self, name: &str) -> Result<Value, Error> {
        self.take_opt(name)
            .ok_or_else(|| Error::invalid_input(format!("missing input `{name}`")))
    }

    /// Takes a table input.
    pub fn table(&mut self, name: &str) -> Result<Table, Error> {
        match self.take(name)? {
            Value::Table(t) => Ok(t),
            other => Err(wrong_kind(name, "table", &other)),
        }
    }

    /// Takes a tensor input, checking that its data matches its shape.
    pub fn tensor(&mut self, name: &str) -> Result<Tensor, Error> {
        match self.take(name)? {
            Value::Tensor(t) => {
                t.check()?;
                Ok(t)
            }
            other => Err(wrong_kind(name, "tensor", &other)),
        }
    }

    /// Takes a bytes input.
    pub fn bytes(&mut self, name: &str) -> Result<Vec<u8>, Error> {
        match self.take(name)? {
            Value::Bytes(b) => Ok(b),
            other => Err(wrong_kind(name, "bytes", &other)),
        }
    }

    /// Takes a text input (text or JSON).
    pub fn text(&mut self, name: &str) -> Result<String, Error> {
        match self.take(name)? {
            Value::Text(s) | Value::Json(s) => Ok(s),
            other => Err(wrong_kind(name, "text", &other)),
        }
    }

    /// Takes a scalar input.
    pub fn scalar(&mut self, name: &str) -> Result<f64, Error> {
        match self.take(name)? {
            Value::Scalar(x) => Ok(x),
            other => Err(wrong_kind(name, "scalar", &other)),
        }
    }

    /// The inputs left, by value.
    pub fn into_inner(self) -> Vec<NamedValue> {
        self.0
    }
}

fn wrong_kind(name: &str, want: &str, got: &Value) -> Error {
    Error::invalid_input(format!(
        "input `{name}` must be a {want}, got a {}",
        got.kind_name()
    ))
}

/// The config a plugin was called with: text keys and values, parsed on demand.
#[derive(Debug, Clone, Default)]
pub struct Config(Vec<(String, String)>);

impl Config {
    /// Wraps the config the host passed.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Config(pairs)
    }

    /// The value of `key`, if set (the last one wins when a key repeats).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`; a missing key is an `invalid-config` error.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key)
            .ok_or_else(|| Error::invalid_config(format!("missing config key `{key}`")))
    }

    /// Parses the value of `key`, if set.
    pub fn parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        self.get(key)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|e| Error::invalid_config(format!("config key `{key}` = `{v}`: {e}")))
            })
            .transpose()
    }

    /// Parses the value of `key`, or returns `default` when it is not set.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.parse(key)?.unwrap_or(default))
    }

    /// A comma-separated list; empty when the key is not set.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// All pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// The named outputs a plugin returns.
#[derive(Debug, Clone, Default)]
pub struct Outputs(Vec<NamedValue>);

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Outputs(Vec::new())
    }

    /// Adds an output.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.push(name, value);
        self
    }

    /// Adds an output in place.
    pub fn push(&mut self, name: &str, value: impl Into<Value>) {
        self.0.push(NamedValue {
            name: name.to_string(),
            value: value.into(),
        });
    }

    /// The outputs, as the host receives them.
    pub fn into_inner(self) -> Vec<NamedValue> {
        self.0
    }
}
