"""{{name}}: {{description}}."""

import kiln


class Step(kiln.Step):
    descriptor = (
        kiln.Descriptor("{{name}}", "{{description}}")
        .input("x", "tensor", "the tensor to scale")
        .output("y", "tensor", "x times the factor")
        .config("factor", 2, "the multiplier")
    )

    def process(self, inputs, config):
        factor = config.float("factor")
        x = inputs.tensor("x")
        kiln.log_metric("factor", factor)
        return {"y": (x * factor).astype("float64")}
