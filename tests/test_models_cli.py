"""`runpoint models` end to end on a real run: register, ls, show, alias (with a conflict), download, export
to safetensors (read back with safetensors) and to .pt2 (loaded with torch.export.load), and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import runpoint as rp

from .test_models_api import _model, _same, _train, cli

NETS = '''
import torch

def make_net():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
'''


def test_models_commands_end_to_end(root, tmp_path) -> None:
    run_id, saved = _train(root, steps=(100, 200))
    registered = cli(root, "models", "register", "digits", run_id, "--alias", "champion", "--tag", "cnn")
    assert registered.exit_code == 0 and "registered digits:1" in registered.output, registered.output
    assert cli(root, "models", "register", "digits", f"{run_id}:step=100").exit_code == 0

    listed = json.loads(cli(root, "models", "ls", "--json").stdout)
    assert [(m["name"], m["latest"], m["versions"], m["aliases"]) for m in listed] == [("digits", 2, 2, {"champion": 1})]
    shown = cli(root, "models", "show", "digits@champion")
    assert shown.exit_code == 0 and "digits:1 (champion)" in shown.output and run_id in shown.output
    detail = json.loads(cli(root, "models", "show", "digits", "--json").stdout)
    assert [v["ref"] for v in detail["versions"]] == ["digits:1", "digits:2"] and detail["versions"][0]["step"] == 200

    lost = cli(root, "models", "alias", "digits", "champion", "2", "--expect", "2")
    assert lost.exit_code == 1 and "someone moved it first" in lost.output and "--expect 1" in lost.output
    assert cli(root, "models", "alias", "digits", "champion", "2", "--expect", "1").exit_code == 0
    history = json.loads(cli(root, "models", "show", "digits", "--json").stdout)["history"]
    assert [(e["outcome"], e["to_version"]) for e in history] == [("moved", 1), ("conflict", 2), ("moved", 2)]

    copy = tmp_path / "copy"
    assert cli(root, "models", "download", "digits@champion", str(copy)).exit_code == 0
    assert _same(rp.load_checkpoint(copy)["model"], saved[100])

    from safetensors.torch import load_file

    assert cli(root, "models", "export", "digits:1", str(tmp_path / "w.safetensors")).exit_code == 0
    assert _same(load_file(tmp_path / "w.safetensors"), saved[200])


@pytest.mark.slow  # torch.export's first trace in a process takes ~15 s on 2 cores
def test_export_to_pt2_and_a_clear_error_when_torch_export_fails(root, tmp_path, monkeypatch) -> None:
    run_id, saved = _train(root, steps=(100,))
    cli(root, "models", "register", "digits", run_id, "--alias", "champion")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets_for_export.py").write_text(NETS)
    pt2 = tmp_path / "m.pt2"
    exported = cli(root, "models", "export", "digits@champion", str(pt2), "--model", "nets_for_export:make_net",
                   "--example-input", "2x4")
    assert exported.exit_code == 0, exported.output
    module = _model(0)
    module.load_state_dict(saved[100])
    x = torch.randn(2, 4)
    assert torch.equal(torch.export.load(pt2).module()(x), module(x))
    failed = cli(root, "models", "export", "digits@champion", str(tmp_path / "bad.pt2"), "--model",
                 "nets_for_export:make_net", "--example-input", "2x5")
    assert failed.exit_code == 1 and "torch.export could not export digits:1" in failed.output
    assert not (tmp_path / "bad.pt2").exists()


def test_models_commands_refuse_bad_input_clearly(root, tmp_path) -> None:
    run_id, _ = _train(root, steps=(100,))
    cli(root, "models", "register", "m", run_id)
    for args, message in [
        (("show", "nope"), "no model 'nope'; models: m"),
        (("show", "m@prod"), "no alias 'prod' on model 'm' (aliases: none)"),
        (("show", "m:7"), "model 'm' has no version 7; versions: 1"),
        (("show", "m:seven"), "give NAME (the latest version), NAME:VERSION"),
        (("alias", "m", "prod"), "give a VERSION"),
        (("alias", "m", "prod", "--remove"), "no alias 'prod' on model 'm'"),
        (("register", "m", f"{run_id}:step=5"), "no checkpoint for step 5"),
        (("export", "m", str(tmp_path / "x.onnx")), ".safetensors (the weights) or .pt2"),
        (("export", "m", str(tmp_path / "x.pt2")), "--model MODULE:FACTORY --example-input"),
        (("export", "m", str(tmp_path / "x.pt2"), "--model", "json:loads", "--example-input", "4y4"), "SHAPE[:DTYPE]"),
        (("download", "m", str(tmp_path)), "exists; give a new directory"),
    ]:
        result = cli(root, "models", *args)
        assert result.exit_code in (1, 2) and message in " ".join(result.output.split()), (args, result.output)
    assert not Path(tmp_path / "x.pt2").exists()
