"""The store's wire format: batches survive the trip bit for bit, and bad bodies are refused by field."""

from __future__ import annotations

import json
import math
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runpoint.errors import InvalidArgumentError
from runpoint.store import MediaRecord, MetricSeries, WriteBatch
from runpoint.store.wire import batch_from_wire, decode_batch, encode_batch

keys = st.text(st.characters(min_codepoint=32, blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda k: "\x7f" not in k
)
series = st.lists(
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=False)),
    max_size=30,
).map(lambda pts: MetricSeries(array("q", [p[0] for p in pts]), array("d", [p[1] for p in pts]), array("d", [p[2] for p in pts])))


@settings(max_examples=60, deadline=None)
@given(metrics=st.dictionaries(keys, series, max_size=4), sequence=st.none() | st.integers(0, 2**63 - 1),
       tags=st.lists(keys, max_size=3), summary=st.dictionaries(keys, st.integers() | st.text(max_size=5), max_size=3))
def test_a_batch_survives_the_msgpack_trip_bit_for_bit(metrics, sequence, tags, summary):
    batch = WriteBatch(metrics=metrics, tags=tuple(tags), summary=summary, sequence=sequence, heartbeat_at=1.5,
                       media=[MediaRecord("img", 3, "image", 2.0, {"width": 1}, "media/img/3.png", b"\x89PNG")])
    back = decode_batch(encode_batch(batch))
    assert back.metrics == batch.metrics  # MetricSeries compares values bit for bit (NaN included)
    assert (back.tags, back.summary, back.sequence, back.heartbeat_at) == (batch.tags, batch.summary, sequence, 1.5)
    assert back.media[0].file == b"\x89PNG" and back.media[0].path == "media/img/3.png"


def test_the_json_form_takes_lists_and_named_special_floats():
    body = json.loads('{"metrics": {"loss": {"steps": [1, 2], "values": ["NaN", 0.5], "times": [1.0, 2.0]}}}')
    loss = batch_from_wire(body).metrics["loss"]
    assert list(loss.steps) == [1, 2] and math.isnan(loss.values[0]) and loss.values[1] == 0.5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"metrics": {"a": [[1], [1.0]]}}, "metrics['a']"),
        ({"metrics": {"a": [[1, 2], [1.0], [1.0]]}}, "metrics['a']"),
        ({"metrics": {"a": [["x"], [1.0], [1.0]]}}, "metrics['a'].steps"),
        ({"metrics": {"a": [b"\x00" * 7, b"", b""]}}, "metrics['a'].steps"),
        ({"metrics": {"": [[], [], []]}}, "metrics key"),
        ({"media": [{"kind": "image", "key": "k", "step": 1, "time": 1.0, "path": "../../etc/passwd"}]}, "media[0].path"),
        ({"media": [{"kind": "video", "key": "k", "step": 1, "time": 1.0}]}, "media[0].kind"),
        ({"sequence": "7"}, "sequence"),
        ({"rank": 70000}, "rank"),
        ({"heartbeat_at": math.inf}, "heartbeat_at"),
        ({"surprise": 1}, "body"),
    ],
)
def test_a_malformed_batch_is_refused_naming_the_field(body, field):
    with pytest.raises(InvalidArgumentError) as caught:
        batch_from_wire(body)
    assert caught.value.argument == field


def test_bytes_that_are_not_msgpack_are_refused():
    with pytest.raises(InvalidArgumentError, match="not valid msgpack"):
        decode_batch(b"\xc1\x00")
