"""Schema-driven fuzzing of the dashboard's API: every operation of ``/api/openapi.json``, with
the inputs schemathesis makes up from it (valid and malformed), against the real app with its
token check, over a root that holds real runs. No answer may be a 5xx.

Needs schemathesis (the ``dev`` extra); skipped without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from ..dashboard_fixtures import write_series  # noqa: E402

TOKEN = "fuzz-token"
HEADERS = {"authorization": f"Bearer {TOKEN}", "host": "127.0.0.1"}
EXAMPLES = 25  # per operation and mode: ~20 operations, each answered in milliseconds


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from runpoint.server.app import create_app
    from runpoint.server.entry_points import EntryPoint
    from runpoint.store.sqlite import SQLiteStore

    root: Path = tmp_path_factory.mktemp("fuzz") / "runpoint"
    store = SQLiteStore(root / "runpoint.db")
    try:
        for _ in range(2):
            write_series(store, [0, 1, 2], [1.0, 0.5, float("nan")])
    finally:
        store.close()
    # `true` instead of the demo: a launch the fuzzer gets right starts nothing that lasts
    app = create_app(root, token=TOKEN, include_demo=False,
                     entry_points=[EntryPoint(name="noop", command=("true",), defaults={"lr": 0.1})])
    return schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=HEADERS)


@pytest.mark.slow  # ~20 s per mode on two busy cores
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_api_answer_with_a_server_error(api_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15  # the whole API is described, so the whole API is fuzzed
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=HEADERS, checks=[not_a_server_error])

        try:
            fuzz()
        except Unsatisfiable:  # no malformed input exists (only free-form strings, or no parameters)
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # noqa: BLE001 - collected, so one report names every failing operation
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
