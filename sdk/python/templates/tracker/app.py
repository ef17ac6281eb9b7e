"""{{name}}: {{description}}."""

import kiln


class Tracker(kiln.Tracker):
    descriptor = kiln.Descriptor("{{name}}", "{{description}}")

    def process(self, run_id, events, config):
        for event in events:
            if event.kind == "metric":
                kiln.log.info("%s: %s = %s at step %s", run_id, event.key, event.value, event.step)
