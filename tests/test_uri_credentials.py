"""Tracking URIs and git remotes keep their user, password and tokens out of what runpoint writes.

A real ``mlflow server`` takes a URI with userinfo (its client sends it as basic auth);
``external.json``, the import's ``meta.json`` and error messages must not hold the password.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import runpoint as rp
from runpoint._util.uri import without_credentials
from runpoint.errors import InvalidArgumentError

from .conftest import free_port

PASSWORD = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgresql://mlflow:pw@db.internal:5432/mlflow", "postgresql://db.internal:5432/mlflow"),
        ("postgresql+psycopg://mlflow:p@ss@db/mlflow", "postgresql+psycopg://db/mlflow"),  # unescaped '@'
        ("mysql+pymysql://root@localhost/mlflow", "mysql+pymysql://localhost/mlflow"),
        ("https://user:pw@mlflow.example.com", "https://mlflow.example.com"),
        ("https://token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("http://user:pw@127.0.0.1:5000/prefix?x=1#frag", "http://127.0.0.1:5000/prefix?x=1#frag"),
        ("postgresql://db/mlflow?user=u&password=pw", "postgresql://db/mlflow?user=u&password=********"),
        ("https://host/?api_key=pw&page=2", "https://host/?api_key=********&page=2"),
        # nothing to hide: unchanged, byte for byte
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("file:///tmp/mlruns", "file:///tmp/mlruns"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("databricks", "databricks"),
        ("databricks://profile:prefix", "databricks://profile:prefix"),
        ("/home/me/mlruns", "/home/me/mlruns"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("https://user:pw@[::1", "https://********"),  # malformed: only the scheme is kept
    ],
)
def test_credentials_are_stripped_from_every_uri_form(uri: str, expected: str) -> None:
    assert without_credentials(uri) == expected


@given(
    scheme=st.sampled_from(["http", "https", "postgresql", "postgresql+psycopg", "mysql", "mssql+pyodbc"]),
    user=st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12),
    password=st.text(min_size=1, max_size=20),
    port=st.none() | st.integers(1, 65535),
)
def test_any_user_and_password_disappear(scheme: str, user: str, password: str, port: int | None) -> None:
    host = "db.internal" + (f":{port}" if port else "")
    uri = f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}/mlflow"
    assert without_credentials(uri) == f"{scheme}://{host}/mlflow"


@pytest.mark.slow  # starts a real mlflow server, ~17 s
def test_the_mlflow_sink_keeps_the_password_out_of_external_json(mlflow_server: str, root: Path) -> None:
    from runpoint.sinks import MLflowSink, read_external

    with_login = mlflow_server.replace("http://", f"http://mlflow:{PASSWORD}@")
    with rp.init(project="creds", config={"lr": 0.1}, root=root, sinks=[MLflowSink(tracking_uri=with_login)]) as run:
        run.log({"x": 1.0}, step=0)
    text = (run.dir / "external.json").read_text()
    assert PASSWORD not in text
    first = read_external(run.dir)["mlflow"]
    assert first["status"] == "finished", first
    assert first["external"]["tracking_uri"] == mlflow_server
    assert first["external"]["url"].startswith(f"{mlflow_server}/#/experiments/")

    # the stored URI still identifies the server: a resume continues the same MLflow run
    with rp.init(project="creds", root=root, resume=run.id, sinks=[MLflowSink(tracking_uri=with_login)]) as resumed:
        resumed.log({"x": 2.0}, step=1)
    second = read_external(run.dir)["mlflow"]["external"]
    assert second["run_id"] == first["external"]["run_id"]
    assert PASSWORD not in (run.dir / "external.json").read_text()


@pytest.mark.slow  # starts a real mlflow server, ~20 s
def test_importing_keeps_the_password_out_of_meta_json(mlflow_server: str, root: Path) -> None:
    from mlflow import MlflowClient

    from runpoint.importers import mlflow as mlflow_import

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.create_experiment(f"creds-import-{root.parent.name}")
    source = client.create_run(experiment, run_name="legacy")
    client.log_param(source.info.run_id, "lr", "0.1")
    client.set_terminated(source.info.run_id, "FINISHED")

    with_login = mlflow_server.replace("http://", f"http://mlflow:{PASSWORD}@")
    created = mlflow_import.import_runs(with_login, root=root, project="legacy")
    assert created
    for run_id in created:
        (meta_path,) = root.glob(f"legacy/{run_id}/meta.json")
        meta = json.loads(meta_path.read_text())
        assert PASSWORD not in json.dumps(meta)
        assert meta["imported"]["tracking_uri"] == mlflow_server


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_server_that_is_not_there_is_named_without_the_password(root: Path, scheme: str) -> None:
    from runpoint.importers import mlflow as mlflow_import

    port = free_port()
    with pytest.raises(InvalidArgumentError) as caught:
        mlflow_import.import_runs(f"{scheme}://mlflow:{PASSWORD}@127.0.0.1:{port}", root=root)
    message = str(caught.value)
    assert PASSWORD not in message
    assert f"{scheme}://127.0.0.1:{port}" in message
