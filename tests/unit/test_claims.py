"""The values the engine and the store exchange about claimed rows."""

import dataclasses

from worker.claims import Resolution


def test_a_resolution_s_record_holds_every_field_in_order() -> None:
    values = {field.name: f"value-{n}" for n, field in enumerate(dataclasses.fields(Resolution))}
    record = Resolution(**values).as_record()  # type: ignore[arg-type]
    assert list(record.items()) == list(values.items())
