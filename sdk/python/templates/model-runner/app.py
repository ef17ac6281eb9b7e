"""{{name}}: {{description}}. The artifact is one number, predicted for every row."""

import kiln


class Constant(kiln.Model):
    def __init__(self, value):
        self.value = value

    def metadata(self):
        return (
            kiln.Metadata()
            .input("features", "table", "one row per prediction")
            .output("predictions", "tensor", "one value per row")
            .property("value", self.value)
        )

    def predict(self, inputs):
        rows = inputs.table("features").num_rows
        return {"predictions": kiln.Tensor([self.value] * rows, dtype="float64")}


class ModelRunner(kiln.ModelRunner):
    descriptor = kiln.Descriptor("{{name}}", "{{description}}")

    def load(self, artifact, config):
        try:
            return Constant(float(artifact.decode("utf-8").strip()))
        except (UnicodeDecodeError, ValueError):
            raise kiln.invalid_input("the artifact is not a number") from None
