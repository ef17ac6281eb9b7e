//! The one place that runs `wasmtime::component::bindgen!` over the contract in `wit/`.
//!
//! It binds a host-side world that imports what plugins may call and exports all four
//! roles. No plugin implements that world; the host only uses its pieces: the `Host`
//! traits of the imports, and each role's `GuestIndices`, which find one role's exports
//! in a component. Binding one world keeps one Rust type per WIT type across roles.

wasmtime::component::bindgen!({
    path: "../wit",
    inline: "
        package kiln:host;
        world host {
            import kiln:plugin/log@0.1.0;
            import kiln:plugin/tracking@0.1.0;
            export kiln:plugin/step@0.1.0;
            export kiln:plugin/validator@0.1.0;
            export kiln:plugin/model-runner@0.1.0;
            export kiln:plugin/tracker@0.1.0;
        }
    ",
    additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    // Plugins are called asynchronously, so that a call waiting in WASI can be given up.
    exports: { default: async },
});

pub use self::exports::kiln::plugin::{model_runner, step, tracker, validator};
pub use self::kiln::plugin::types::*;
pub use self::kiln::plugin::{log, tracking};

/// The WIT package every plugin is checked against.
pub const WIT_PACKAGE: &str = "kiln:plugin@0.1.0";
