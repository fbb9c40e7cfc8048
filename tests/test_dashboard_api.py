"""The dashboard's JSON API, over HTTP (httpx) against a real `runpoint ui` server and store."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import httpx
import pytest

from runpoint.store.sqlite import SQLiteStore

from .dashboard_fixtures import make_runs, running_server, write_series

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("dash") / "runpoint"
    return root, make_runs(root)


@pytest.fixture(scope="module")
def root(made: tuple[Path, dict[str, str]]) -> Path:
    return made[0]


@pytest.fixture(scope="module")
def ids(made: tuple[Path, dict[str, str]]) -> dict[str, str]:
    return made[1]


@pytest.fixture(scope="module")
def client(root: Path):  # noqa: ANN201
    with running_server(root) as server, httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        yield client


def test_runs_are_listed_with_filters_and_picked_columns(client: httpx.Client, ids: dict[str, str]) -> None:
    data = client.get("/api/runs", params={"project": "vision", "columns": "params.training.learning_rate,metrics.val/acc,summary.best/val_acc"}).json()
    by_name = {row["name"]: row for row in data["runs"]}
    assert set(by_name) == {"cnn-0", "cnn-1", "cnn-2", "broken"}
    assert by_name["cnn-1"]["values"] == {
        "params.training.learning_rate": 3e-3, "metrics.val/acc": pytest.approx(0.75), "summary.best/val_acc": pytest.approx(0.75),
    }
    assert by_name["broken"]["status"] == "failed" and "diverged" in by_name["broken"]["error"]
    wide = client.get("/api/runs", params=[("tag", "wide"), ("tag", "cnn")]).json()["runs"]
    assert {row["name"] for row in wide} == {"cnn-1", "cnn-2"}
    failed = client.get("/api/runs", params={"status": "failed"}).json()["runs"]
    assert [row["name"] for row in failed] == ["broken"]
    fast = client.get("/api/runs", params={"where": "params.training.learning_rate >= 3e-3"}).json()["runs"]
    assert {row["name"] for row in fast} == {"cnn-1", "cnn-2", "broken"}


def test_bad_filters_and_columns_get_a_one_line_reason(client: httpx.Client) -> None:
    bad_where = client.get("/api/runs", params={"where": "lr >> 3"})
    assert bad_where.status_code == 400 and "expected <params|metrics|summary>" in bad_where.json()["detail"]
    bad_column = client.get("/api/runs", params={"columns": "nonsense"})
    assert bad_column.status_code == 400 and "params.<key>" in bad_column.json()["detail"]
    bad_status = client.get("/api/runs", params={"status": "sleeping"})
    assert bad_status.status_code == 400


def test_columns_name_every_key_per_scope(client: httpx.Client) -> None:
    keys = client.get("/api/columns", params={"project": "vision"}).json()
    assert keys["params"] == ["model.width", "training.epochs", "training.learning_rate"]
    assert keys["metrics"] == ["checkpoint/save_seconds", "epoch", "train/loss", "val/acc"]  # cnn-0 saved a checkpoint
    # the 'broken' run's NaN loss is marked by the NaN/Inf guard
    assert keys["summary"] == ["best/val_acc", "first_nonfinite/key", "first_nonfinite/step", "first_nonfinite/value"]


def test_run_details_and_missing_runs(client: httpx.Client, ids: dict[str, str]) -> None:
    details = client.get(f"/api/runs/{ids['cnn-2']}").json()
    assert details["run"]["name"] == "cnn-2"
    assert details["config"] == {"training": {"learning_rate": 1e-2, "epochs": 3}, "model": {"width": 192}}
    assert details["metrics"]["train/loss"]["count"] == 300
    assert details["summary_full"]["val/acc.max"] == pytest.approx(0.8)
    by_name = client.get("/api/runs/cnn-2").json()
    assert by_name["run"]["id"] == ids["cnn-2"]
    missing = client.get("/api/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.json()["detail"]
    nan_last = client.get(f"/api/runs/{ids['broken']}").json()["metrics"]["train/loss"]["last"]
    assert nan_last == "NaN"  # strict JSON: non-finite floats are strings


def test_a_long_series_arrives_downsampled_with_its_extremes(client: httpx.Client, ids: dict[str, str]) -> None:
    data = client.get(f"/api/runs/{ids['long']}/series", params={"key": "train/loss", "points": 500}).json()
    assert data["raw"] is False and data["total"] == 200_000
    assert len(data["x"]) <= 1000 and len(data["bucket_mean"]) <= 500
    finite = [y for y in data["y"] if y is not None]
    assert max(finite) == 50.0 and min(finite) == -5.0
    assert data["x"][data["y"].index(50.0)] == 123_456  # the spike at the step where it happened
    assert data["nonfinite"] == 1
    assert data["x"] == sorted(data["x"])


def test_a_coarse_view_uses_chunk_summaries_and_stays_exact(client: httpx.Client, ids: dict[str, str]) -> None:
    data = client.get(f"/api/runs/{ids['long']}/series", params={"key": "train/loss", "points": 8}).json()
    assert data["chunks_read"] < data["chunks_total"] / 2  # chunks inside one bucket were not read
    finite = [y for y in data["y"] if y is not None]
    assert max(finite) == 50.0 and min(finite) == -5.0 and data["in_range"] == 200_000


def test_zooming_reads_only_the_chunks_in_range(client: httpx.Client, ids: dict[str, str]) -> None:
    zoomed = client.get(f"/api/runs/{ids['long']}/series",
                        params={"key": "train/loss", "x0": 123_400, "x1": 123_500, "points": 500}).json()
    assert zoomed["raw"] is True  # 101 points fit: every one is sent
    assert zoomed["x"] == list(range(123_400, 123_501))
    assert 50.0 in zoomed["y"]
    assert zoomed["chunks_read"] < zoomed["chunks_total"] / 10


def test_time_relative_and_epoch_axes(client: httpx.Client, ids: dict[str, str], root: Path) -> None:
    run = ids["cnn-0"]
    by_step = client.get(f"/api/runs/{run}/series", params={"key": "train/loss"}).json()
    assert by_step["raw"] and by_step["x"] == list(range(300))
    by_time = client.get(f"/api/runs/{run}/series", params={"key": "train/loss", "x": "time"}).json()
    relative = client.get(f"/api/runs/{run}/series", params={"key": "train/loss", "x": "relative"}).json()
    created = client.get(f"/api/runs/{run}").json()["run"]["created_at"]
    assert relative["x"] == pytest.approx([t - created for t in by_time["x"]])
    assert all(x >= 0 for x in relative["x"])
    epochs = client.get(f"/api/runs/{run}/series", params={"key": "train/loss", "x": "epoch"}).json()
    assert epochs["x"][0] == 0 and epochs["x"][100] == pytest.approx(1.0) and epochs["x"][150] == pytest.approx(1.5)
    no_epoch = client.get(f"/api/runs/{ids['long']}/series", params={"key": "train/loss", "x": "epoch"})
    assert no_epoch.status_code == 400 and "epoch" in no_epoch.json()["detail"]
    unknown = client.get(f"/api/runs/{run}/series", params={"key": "nope"})
    assert unknown.status_code == 400 and "train/loss" in unknown.json()["detail"]


def test_compare_lists_differences_and_final_metrics(client: httpx.Client, ids: dict[str, str]) -> None:
    data = client.get("/api/compare", params={"runs": f"{ids['cnn-0']},{ids['cnn-1']}"}).json()
    assert data["params_differing"] == {"model.width": [64, 128], "training.learning_rate": [1e-3, 3e-3]}
    assert data["params_same"] == {"training.epochs": 3}
    assert data["metrics_last"]["val/acc"] == [pytest.approx(0.7), pytest.approx(0.75)]
    assert data["summary"]["best/val_acc"] == [pytest.approx(0.7), pytest.approx(0.75)]
    assert client.get("/api/compare", params={"runs": ids["cnn-0"]}).status_code == 400


def test_console_tail_reads_like_a_terminal(client: httpx.Client, ids: dict[str, str]) -> None:
    data = client.get(f"/api/runs/{ids['cnn-0']}/console").json()
    assert data["file"] == "console.log"
    assert data["text"] == "epoch 1\ngreen line\nprogress 100%\n"
    tail = client.get(f"/api/runs/{ids['cnn-0']}/console", params={"max_bytes": 20}).json()
    assert tail["truncated"] and tail["text"].endswith("progress 100%\n") and not tail["text"].startswith("epoch")
    assert client.get(f"/api/runs/{ids['cnn-0']}/console", params={"file": "../meta.json"}).status_code == 400


def test_checkpoints_are_listed_and_verified(client: httpx.Client, ids: dict[str, str], root: Path) -> None:
    run = ids["cnn-0"]
    data = client.get(f"/api/runs/{run}/checkpoints").json()
    assert data["latest"] == "step-000100"
    [row] = data["checkpoints"]
    folder = root / "vision" / run / "checkpoints" / "step-000100"
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert row["step"] == 100 and row["bytes"] >= 1024 and row["is_best"] and row["state"] == "present"
    assert row["metrics"] == {"val/acc": 0.6}
    assert client.post(f"/api/runs/{run}/checkpoints/100/verify").json() == {
        "step": 100, "ok": True, "files_checked": len(files), "problems": [],
    }
    weights = folder / "tensors.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one flipped bit, same size
        result = client.post(f"/api/runs/{run}/checkpoints/100/verify").json()
        assert result["ok"] is False and "tensors.safetensors" in result["problems"][0]
    finally:
        weights.write_bytes(original)
    assert client.post(f"/api/runs/{run}/checkpoints/999/verify").status_code == 404


def test_media_rows_and_files_are_served(client: httpx.Client, ids: dict[str, str], root: Path) -> None:
    run = ids["cnn-0"]
    media = {row["key"]: row for row in client.get(f"/api/runs/{run}/media").json()["media"]}
    assert media["weights"]["data"]["counts"] == [3, 9, 4] and media["weights"]["url"] is None
    image = client.get(media["samples"]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == (root / "vision" / run / media["samples"]["path"]).read_bytes()


@pytest.mark.parametrize("path", [
    "media/../meta.json", "media/..%2f..%2f..%2frunpoint.db", "..%2f..%2frunpoint.db", "meta.json",
    "logs/console.log", "media/%2fetc%2fpasswd", "media/escape.txt", "media/nul%00.png", "media/to_logs.txt",
])
def test_files_outside_the_run_media_are_never_served(client: httpx.Client, ids: dict[str, str], root: Path, path: str) -> None:
    outside = root.parent / "secret.txt"
    outside.write_text("secret")
    link = root / "vision" / ids["cnn-0"] / "media" / "escape.txt"
    if not link.is_symlink():
        link.symlink_to(outside)
    inside = link.with_name("to_logs.txt")  # inside the run, but not under media/
    if not inside.is_symlink():
        inside.symlink_to("../logs/console.log")
    response = client.get(f"/api/runs/{ids['cnn-0']}/files/{path}")
    assert response.status_code == 404
    assert b"secret" not in response.content and b"SQLite" not in response.content


def test_requests_for_another_host_are_refused(client: httpx.Client) -> None:
    rebound = client.get("/api/runs", headers={"host": "attacker.example:80"})
    assert rebound.status_code == 403
    assert client.get("/api/runs", headers={"host": "localhost"}).status_code == 200
    assert client.get("/api/runs", headers={"host": "127.0.0.2:6300"}).status_code == 200  # any loopback address


def test_media_that_is_not_an_image_is_downloaded_not_rendered(client: httpx.Client, ids: dict[str, str], root: Path) -> None:
    page = root / "vision" / ids["cnn-0"] / "media" / "page.html"
    page.write_text("<script>alert(1)</script>")
    response = client.get(f"/api/runs/{ids['cnn-0']}/files/media/page.html")
    assert response.status_code == 200 and response.content == page.read_bytes()
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment")


def test_cross_site_posts_are_refused(client: httpx.Client, root: Path) -> None:
    cross = client.post("/api/launches", json={"entry_point": "demo"}, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    form = client.post("/api/launches", content='{"entry_point": "demo"}', headers={"content-type": "text/plain"})
    assert form.status_code == 422
    assert not (root / ".launches").exists() or not any((root / ".launches").iterdir())


def test_launch_validates_the_config_against_the_schema(client: httpx.Client, root: Path) -> None:
    bad = client.post("/api/launches", json={"entry_point": "demo", "config": {"training": {"epochs": "many", "colour": 1}}})
    assert bad.status_code == 422
    issues = bad.json()["issues"]
    # the demo's own config loader checks it: ProjectConfig's types, bounds and field names
    assert any(issue.startswith("training.epochs: got 'many', expected a valid integer") for issue in issues)
    assert any(issue.startswith("training.colour: unknown key") for issue in issues)
    unknown = client.post("/api/launches", json={"entry_point": "rocket"})
    assert unknown.status_code == 400 and "rocket" in unknown.json()["detail"]
    schema = client.get("/api/entry-points").json()[0]
    assert schema["name"] == "demo" and schema["presets"]["quick"]["training"]["epochs"] == 3
    learning_rate = schema["schema"]["properties"]["training"]["properties"]["learning_rate"]
    assert learning_rate["type"] == "number" and learning_rate["exclusiveMinimum"] == 0
    assert learning_rate["description"] == "Peak learning rate."  # from ProjectConfig


def test_the_openapi_description_documents_the_api(client: httpx.Client) -> None:
    spec = client.get("/api/openapi.json").json()
    assert {"/api/runs", "/api/runs/{ref}/series", "/api/compare", "/api/launches"} <= set(spec["paths"])
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    page = docs.text
    assert "/api/runs/{ref}/series" in page and "/api/openapi.json" in page
    # readable offline: the page loads no script, stylesheet or font from anywhere
    assert "<script" not in page and "http://" not in page and "https://" not in page and "cdn" not in page.lower()


TRAIN_SCRIPT = """
import os, sys, time, yaml
import runpoint as rp
config = yaml.safe_load(open(os.environ["RUNPOINT_LAUNCH_CONFIG"]))
with rp.init(project="scripted", name=sys.argv[1], config=config, console=False) as run:
    for step in range(100000):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.01)
"""


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_registered_entry_points_launch_and_stop_as_killed(tmp_path: Path) -> None:
    root = tmp_path / "runpoint"
    SQLiteStore(root / "runpoint.db").close()
    (tmp_path / "train.py").write_text(TRAIN_SCRIPT)
    (tmp_path / "launch.yaml").write_text(
        "entry_points:\n"
        "  scripted:\n"
        "    description: a loop that logs until stopped\n"
        "    command: ['{python}', 'train.py', '{name}']\n"
        "    project: scripted\n"
        "    defaults: {optimizer: {lr: 0.1, momentum: 0.9}}\n"
        "    presets: {slow: {optimizer: {lr: 0.01}}}\n"
    )
    with running_server(root, "--entry-points", str(tmp_path / "launch.yaml")) as server, \
            httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        entries = {e["name"]: e for e in client.get("/api/entry-points").json()}
        assert entries["scripted"]["presets"]["slow"] == {"optimizer": {"lr": 0.01, "momentum": 0.9}}
        started = client.post("/api/launches", json={"entry_point": "scripted", "name": "looper",
                                                      "config": {"optimizer": {"lr": 0.5}}})
        assert started.status_code == 201, started.text
        launch_id = started.json()["id"]
        launch = _wait(lambda: client.get(f"/api/launches/{launch_id}").json(),
                       lambda d: d["run_id"] and d["run_status"] == "running", "the launched run to start")
        _wait(lambda: client.get(f"/api/runs/{launch['run_id']}/state").json(),
              lambda d: d["metrics"].get("loss", {}).get("count", 0) > 5, "points to arrive")
        assert client.post(f"/api/launches/{launch_id}/stop").status_code == 200
        done = _wait(lambda: client.get(f"/api/launches/{launch_id}").json(), lambda d: d["state"] == "exited",
                     "the process to exit")
        assert done["exit_code"] == 143
        again = client.post(f"/api/launches/{launch_id}/stop")
        assert again.status_code == 400 and "not running" in again.json()["detail"]
    store = SQLiteStore(root / "runpoint.db", create=False)
    try:
        run = store.get_run(launch["run_id"])
        assert run.status.value == "killed" and run.name == "looper"
        assert store.get_params(run.id) == {"optimizer.lr": 0.5, "optimizer.momentum": 0.9}
        assert store.metric_stats(run.id)["loss"].count > 5
    finally:
        store.close()


def _wait(fetch, done, what: str, timeout: float = 60):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {value}")


def test_a_token_is_required_on_every_request_when_set(tmp_path: Path) -> None:
    root = tmp_path / "runpoint"
    SQLiteStore(root / "runpoint.db").close()
    with running_server(root, "--token", "s3cret-token") as server:
        assert server.line.rstrip().endswith("?token=s3cret-token  (Ctrl-C stops it)")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/api/runs").status_code == 401
            assert client.get("/").status_code == 401
            assert client.get("/static/app.css").status_code == 401
            assert client.get("/api/runs", headers={"authorization": "Bearer wrong"}).status_code == 401
            assert client.get("/api/runs", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
            assert client.get("/api/runs?token=s3cret-token").status_code == 401  # not in API URLs: they end up in logs
            landing = client.get("/?token=s3cret-token")
            assert landing.status_code == 303 and landing.headers["location"] == "/"
            assert "HttpOnly" in landing.headers["set-cookie"] and "SameSite=Strict" in landing.headers["set-cookie"]
            assert client.get("/api/runs").status_code == 200  # the cookie now carries it


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_a_token_is_required_by_default_even_on_loopback(root: Path, tmp_path: Path) -> None:
    """Other users of a shared machine reach 127.0.0.1 too: only --no-token opens it, and only there."""
    from .conftest import cli

    with running_server(root) as server:
        assert server.token and len(server.token) >= 24
        assert f"{server.url}?token={server.token}" in server.line
        with httpx.Client(base_url=server.url, timeout=30) as client:
            refused = client.get("/api/runs")
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert client.post("/api/runs/x/stop").status_code == 401
            assert client.get("/api/runs", headers={"authorization": "Bearer " + server.token[:-1]}).status_code == 401
            assert client.get("/api/runs", headers=server.auth).status_code == 200
            assert client.get(f"/?token={server.token}").status_code == 303
            assert client.get("/api/runs").status_code == 200  # the cookie now carries it
    with running_server(root, "--no-token") as open_server:
        assert open_server.token is None and "?token=" not in open_server.line
        assert httpx.get(open_server.url + "api/runs", timeout=30).status_code == 200
    for args, reason in (
        (("--no-token", "--host", "0.0.0.0"), "--no-token is refused with --host 0.0.0.0"),
        (("--no-token", "--token", "abc"), "exclude each other"),
    ):
        refused_cli = cli(root, "ui", "--no-browser", "--port", "0", *args)
        assert refused_cli.returncode == 2, refused_cli.stderr
        assert reason in refused_cli.stderr and len(refused_cli.stderr.strip().splitlines()) == 1
        assert refused_cli.stdout == ""


def test_downsampling_matches_a_brute_force_min_max(tmp_path: Path) -> None:
    """Per bucket, the drawn minimum and maximum are those of the raw points, NaNs skipped."""
    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from runpoint.server.downsample import downsample_metric
    from runpoint.store.bulk import bulk_reader

    store = SQLiteStore(tmp_path / "runpoint.db")

    @settings(max_examples=40, deadline=None)
    @given(
        values=st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), min_size=30, max_size=3000),
        buckets=st.integers(1, 12),
        shuffle=st.booleans(),
    )
    def check(values: list[float], buckets: int, shuffle: bool) -> None:
        steps = list(range(len(values)))
        if shuffle:
            steps = steps[::-1]  # logged out of order
        run_id = write_series(store, steps, values)
        result = downsample_metric(bulk_reader(store), run_id, "m", buckets=buckets)
        xs, ys = np.array(steps, dtype=float), np.array(values)
        if len(values) <= 2 * buckets:
            assert result.raw
            return
        lo, hi = xs.min(), xs.max()
        width = (hi - lo) / buckets
        which = np.clip(((xs - lo) // width).astype(int), 0, buckets - 1)
        expected = set()
        for b in range(buckets):
            chosen = ys[(which == b) & np.isfinite(ys)]
            if len(chosen):
                expected |= {float(chosen.min()), float(chosen.max())}
        assert set(y for y in result.y if y is not None) == expected
        assert result.in_range == len(values)

    try:
        check()
    finally:
        store.close()
    assert os.path.exists(tmp_path / "runpoint.db")


LOGGING_SCRIPT = """
import time
import runpoint as rp
with rp.init(project="outside", name="not-launched-here", console=False) as run:
    print("started", run.id, flush=True)
    for step in range(100000):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        time.sleep(0.01)
"""


def test_a_run_started_elsewhere_is_stopped_by_its_pid(client: httpx.Client, root: Path, tmp_path: Path) -> None:
    from .conftest import start_script, wait_for_line

    process = start_script(tmp_path, root, LOGGING_SCRIPT)
    try:
        run_id = wait_for_line(process, "started").split()[1]
        response = client.post(f"/api/runs/{run_id}/stop")
        assert response.status_code == 200 and response.json()["signal"] == "SIGTERM"
        assert process.wait(30) == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    assert client.get(f"/api/runs/{run_id}").json()["run"]["status"] == "killed"
    again = client.post(f"/api/runs/{run_id}/stop")
    assert again.status_code == 400 and "killed, not running" in again.json()["detail"]


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_ui_refuses_a_missing_root_and_a_busy_port(tmp_path: Path, root: Path) -> None:
    from .conftest import cli

    missing = cli(tmp_path / "nowhere", "ui", "--no-browser")
    assert missing.returncode == 1 and "--create" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    with running_server(root) as server:
        port = server.url.rsplit(":", 1)[1].strip("/")
        busy = cli(root, "ui", "--no-browser", "--port", port)
    assert busy.returncode == 1 and "Address already in use" in busy.stderr


def test_only_loopback_hosts_skip_the_token_and_paths_stay_inside(tmp_path: Path) -> None:
    from runpoint.errors import InvalidArgumentError
    from runpoint.server.security import is_loopback, resolve_inside

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.png").write_bytes(b"x")
    assert resolve_inside(tmp_path, "media/a.png") == (tmp_path / "media" / "a.png").resolve()
    for bad in ("/etc/passwd", "../x", "media/../../x", "media//a.png", "media\\a.png", "C:/x", "media/a.png\x00", ""):
        with pytest.raises(InvalidArgumentError):
            resolve_inside(tmp_path, bad)


def test_a_pid_reused_by_another_process_is_never_signalled(tmp_path: Path) -> None:
    """launch.json names a live process that is not the one launched: stop refuses, it keeps running."""
    import dataclasses
    import socket
    import subprocess

    import psutil

    from runpoint.errors import InvalidArgumentError
    from runpoint.server.launch import Launch, Launcher
    from runpoint.store.base import RunRecord, RunStatus

    root = tmp_path / "runpoint"
    SQLiteStore(root / "runpoint.db").close()
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        real_start = psutil.Process(sleeper.pid).create_time()
        launched = {
            "reused": Launch(id="reused", entry_point="demo", command=["python"], cwd=str(tmp_path), pid=sleeper.pid,
                             project="p", name="", started_at=real_start - 600, pid_started_at=real_start - 600),
            "unrecorded": Launch(id="unrecorded", entry_point="demo", command=["python"], cwd=str(tmp_path),
                                 pid=sleeper.pid, project="p", name="", started_at=real_start - 600),
            "viaapi": Launch(id="viaapi", entry_point="demo", command=["python"], cwd=str(tmp_path), pid=sleeper.pid,
                             project="p", name="", started_at=real_start - 600, pid_started_at=real_start - 600),
        }
        for launch in launched.values():
            (root / ".launches" / launch.id).mkdir(parents=True)
            record = {k: v for k, v in dataclasses.asdict(launch).items() if not (k == "pid_started_at" and v is None)}
            (root / ".launches" / launch.id / "launch.json").write_text(json.dumps(record))

        launcher = Launcher(root, [])  # a restarted dashboard: no Popen handles, only launch.json
        for launch_id in ("reused", "unrecorded"):
            with pytest.raises(InvalidArgumentError, match="not running"):
                launcher.stop(launch_id)
            assert sleeper.poll() is None
            assert launcher.get(launch_id).state == "exited"
            assert json.loads((root / ".launches" / launch_id / "launch.json").read_text())["state"] == "exited"
        # a run whose process is gone and whose pid went to a process started later (resumed or not)
        run = RunRecord(id="r1", project="p", name="r1", status=RunStatus.RUNNING, created_at=real_start - 900,
                        heartbeat_at=real_start - 600, dir="p/r1", host=socket.gethostname(), pid=sleeper.pid,
                        resume_count=1)
        with pytest.raises(InvalidArgumentError, match="is gone"):
            launcher.stop_run(run)
        assert sleeper.poll() is None

        with running_server(root) as server, httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
            assert client.get("/api/launches/viaapi").json()["state"] == "exited"
            assert client.post("/api/launches/viaapi/stop").status_code == 400
        assert sleeper.poll() is None

        # the launch's own process, recorded with its start time, is still stopped after a restart
        (root / ".launches" / "viaapi" / "launch.json").write_text(json.dumps(dataclasses.asdict(
            dataclasses.replace(launched["viaapi"], started_at=real_start, pid_started_at=real_start))))
        assert Launcher(root, []).stop("viaapi").stop_signal == "SIGTERM"
        assert sleeper.wait(10) == -15
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()


def test_a_command_that_cannot_start_leaves_no_launch_behind(tmp_path: Path) -> None:
    from runpoint.errors import RunpointError
    from runpoint.server.entry_points import EntryPoint
    from runpoint.server.launch import Launcher

    root = tmp_path / "runpoint"
    launcher = Launcher(root, [EntryPoint(name="missing", command=[str(tmp_path / "no-such-program")])])
    with pytest.raises(RunpointError, match="could not start"):
        launcher.launch("missing", {"lr": 0.1}, project="p")
    assert list((root / ".launches").iterdir()) == []
    assert launcher.list() == [] and Launcher(root, []).list() == []
