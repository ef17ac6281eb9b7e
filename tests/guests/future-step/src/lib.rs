//! Exports `kiln:plugin/step` from a contract version the host does not speak (0.9.0).

wit_bindgen::generate!({
    inline: "
        package kiln:plugin@0.9.0;
        interface step {
            describe: func() -> string;
        }
        world later { export step; }
    ",
});

struct Future;

impl exports::kiln::plugin::step::Guest for Future {
    fn describe() -> String {
        "from the future".into()
    }
}

export!(Future);
