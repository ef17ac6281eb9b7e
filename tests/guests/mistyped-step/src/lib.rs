//! Exports `kiln:plugin/step@0.1.0` by name, but `run` has the wrong type.

wit_bindgen::generate!({
    inline: "
        package kiln:plugin@0.1.0;
        interface step {
            describe: func() -> string;
            run: func(x: u32) -> u32;
        }
        world mistyped { export step; }
    ",
});

struct Mistyped;

impl exports::kiln::plugin::step::Guest for Mistyped {
    fn describe() -> String {
        "mistyped".into()
    }
    fn run(x: u32) -> u32 {
        x
    }
}

export!(Mistyped);
