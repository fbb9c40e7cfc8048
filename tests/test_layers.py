"""The architecture holds: layering rules, protocols the concrete classes implement, data kept in step."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import runpoint as rp
from runpoint._devtools import layers

from .conftest import REPO


@pytest.fixture(scope="module")
def modules() -> list[layers.Module]:
    """The package's modules, parsed once for this file's tests (about a second each time)."""
    return layers.load_modules()


def test_the_layering_check_finds_nothing(modules) -> None:  # noqa: ANN001
    assert layers.problems(modules) == []


def test_the_layering_check_runs_as_a_module() -> None:
    result = subprocess.run([sys.executable, "-m", "runpoint._devtools.layers"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "layering holds" in result.stderr


def _fake(name: str, source: str) -> layers.Module:
    """A module that is not on disk, importing what ``source`` imports; its size is errors.py's."""
    import ast

    module = layers.Module(name, layers.PACKAGE_ROOT / "errors.py")
    for node in layers._runtime_imports(ast.parse(source)):
        targets = [a.name for a in node.names] if isinstance(node, ast.Import) else layers._resolve(node, name, False)
        module.imports += [(t, node.lineno) for t in targets if t.startswith("runpoint")]
    return module


@pytest.mark.parametrize(("name", "source", "expected"), [
    ("runpoint.config.extra", "from ..store import open_store", "config imports runpoint.store"),
    ("runpoint.diagnostics.extra", "from ..run.run import Run", "use runpoint.handle.RunHandle"),
    ("runpoint.query.extra", "from ..checkpoint._state import encode", "a private module of runpoint.checkpoint"),
    ("runpoint.store.extra", "def f():\n    from ..query import runs", "package cycle"),
])
def test_the_layering_check_catches_each_kind_of_break(modules, name, source, expected) -> None:  # noqa: ANN001
    broken = modules + [_fake(name, source)]
    assert any(expected in line for line in layers.problems(broken)), layers.problems(broken)


def test_type_checking_imports_do_not_count() -> None:
    module = _fake("runpoint.config.extra", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from ..store import Store\n")
    assert module.imports == []


def test_a_run_is_a_run_handle(tmp_path) -> None:
    from runpoint.handle import RunHandle

    with rp.init(project="p", root=tmp_path, console=False, system_metrics=False) as run:
        assert isinstance(run, RunHandle)


def test_the_sink_options_a_config_accepts_are_the_sinks_own() -> None:
    import importlib

    from runpoint.config._sinks import SINK_OPTIONS
    from runpoint.sinks.select import BUILTIN

    assert set(SINK_OPTIONS) == set(BUILTIN)
    for name, (module, class_name) in BUILTIN.items():
        parameters = tuple(inspect.signature(getattr(importlib.import_module(module), class_name)).parameters)
        assert SINK_OPTIONS[name] == parameters, name
