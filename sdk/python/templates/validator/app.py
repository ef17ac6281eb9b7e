"""{{name}}: {{description}}."""

import kiln


class Validator(kiln.Validator):
    descriptor = (
        kiln.Descriptor("{{name}}", "{{description}}")
        .input("table", "table", "the table to check")
        .config("min_rows", 1, "the fewest rows accepted")
    )

    def process(self, inputs, config):
        min_rows = config.int("min_rows")
        rows = inputs.table("table").num_rows
        return [
            kiln.check(
                "rows",
                rows >= min_rows,
                "error",
                observed=rows,
                detail=f"{rows} rows, at least {min_rows} wanted",
            )
        ]
