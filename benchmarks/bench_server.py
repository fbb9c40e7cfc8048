"""Team server: many clients logging into one server, reading a long metric back, searching runs, uploading a checkpoint.

One run starts a PostgreSQL cluster, moto's S3 server, ``runpoint server`` (4 uvicorn workers)
and ``mlflow server --workers 2`` (its defaults otherwise), both over that PostgreSQL with
their files on that S3, all on 127.0.0.1, and measures each server with the same workload:

1. **Ingest**: client processes started together, each logging its own run (10 keys, points
   sent in batches). Aggregate points per second from the first batch sent to the last one
   answered, and the latency of single batches. Every point is counted back (runpoint through
   the server; MLflow in its database): stored exactly once.
2. **Read** one long metric back whole (runpoint ``HttpStore.read_metric``, MLflow
   ``get_metric_history``).
3. **Search**: runs with 10 params and 5 metrics each; runs with ``lr > 0.01`` and
   ``loss < 0.5``, newest first, 100 of them. MLflow compares params as strings only, so
   its filter says ``params.lr = '0.1'`` (the only lr above 0.01): the same runs. Both answers are checked
   against the expected 100 names. Creating the runs is timed apart (concurrent clients).
4. **Checkpoint upload** of the same files: runpoint's files API (presigned PUTs straight to S3,
   and proxied through the server), MLflow's artifact proxy, and plain boto3.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from typing import Any, Callable

from . import _server_uploads as uploads
from . import _server_workloads as work
from ._harness import Context, Section, Table, package_version
from ._services import Services

TITLE = "Team server: ingest, read-back, search and checkpoint upload (runpoint server vs MLflow tracking server)"
RUNPOINT_WORKERS = 4
MLFLOW_WORKERS = 2
PROXY_ONLY = ("--no-presign",)  # runpoint server's switch sending every upload through the server
DIRECT_ENV = "RUNPOINT_BENCH_DIRECT_PG"  # =1: runpoint's side is PostgresStore in the clients, no server


@dataclass(frozen=True)
class Sizes:
    clients: int
    steps: int  # per key; 10 keys per client
    batch_points: int
    mlflow_clients: int
    mlflow_steps: int
    read_points: int
    mlflow_read_points: int
    search_runs: int
    creators: int  # client processes creating the search runs, per server
    upload_files: int
    upload_file_mib: int
    keys: int = 10
    repeats: int = 5
    log_steps: int = 20_000  # run.log calls of the caller-cost comparison


def sizes(ctx: Context) -> Sizes:
    return ctx.size(
        Sizes(clients=32, steps=10_000, batch_points=5_000, mlflow_clients=32, mlflow_steps=1_000, read_points=1_000_000,
              mlflow_read_points=200_000, search_runs=10_000, creators=16, upload_files=4, upload_file_mib=50),
        Sizes(clients=8, steps=2_000, batch_points=5_000, mlflow_clients=8, mlflow_steps=500, read_points=200_000,
              mlflow_read_points=50_000, search_runs=2_000, creators=8, upload_files=4, upload_file_mib=10),
        Sizes(clients=2, steps=500, batch_points=1_000, mlflow_clients=2, mlflow_steps=100, read_points=5_000,
              mlflow_read_points=2_000, search_runs=100, creators=2, upload_files=2, upload_file_mib=1, keys=2, repeats=2,
              log_steps=1_000),
    )


def runpoint_mode() -> str:
    """``server`` when this build has the team server and its client; ``direct`` (a stand-in) otherwise."""
    if os.environ.get(DIRECT_ENV) == "1":
        return "direct"
    have = all(find_spec(name) is not None for name in ("runpoint.server.team", "runpoint.remote.store", "runpoint.cli.server"))
    return "server" if have else "direct"


def _peer(results: dict[str, Any], name: str, smoke: bool, fn: Callable[[], Any]) -> None:
    """MLflow's side: a failure is reported in the table, not hidden and not stopping runpoint's figures."""
    print(f"  {name} ...", flush=True)
    try:
        results[name] = fn()
    except Exception as exc:
        message = (str(exc).strip().splitlines() or [repr(exc)])[-1][:300]
        if smoke and "No module named" not in message:
            raise
        results[name] = {"error": message}


def _measure(ctx: Context, s: Sizes, mode: str) -> dict[str, Any]:  # long: one run keeps every server up across phases
    workdir = ctx.scratch("server")
    logs = workdir / "logs"
    logs.mkdir()
    r: dict[str, Any] = {"ingest": {}, "read": {}, "search": {}, "upload": {}}
    with Services(logs) as services:
        cluster = services.postgres()
        endpoint = services.moto(("runpoint-artifacts", "mlflow-artifacts", "plain"))
        rp_db, ml_db = cluster.create_database("runpoint_bench"), cluster.create_database("mlflow_bench")
        token: dict[str, str] = {}
        if mode != "direct":  # the server checks tokens: one of its own accounts, as an admin would create it
            from runpoint.server.accounts import Accounts

            with Accounts(rp_db) as accounts:
                accounts.add_user("bench")
                work.TOKEN = accounts.create_token("bench", "write").text
            os.environ["RUNPOINT_TOKEN"] = work.TOKEN
        rp = rp_db if mode == "direct" else services.runpoint(rp_db, "s3://runpoint-artifacts/runs", RUNPOINT_WORKERS, env=token)
        ml: dict[str, Any] = {}
        _peer(ml, "server", ctx.smoke, lambda: _start_mlflow(services, ml_db))
        ml_ok = "error" not in ml["server"]

        print("  runpoint ingest ...", flush=True)
        r["ingest"]["runpoint"] = work.ingest("runpoint", rp, logs, clients_n=s.clients, keys=s.keys, steps=s.steps,
                                              batch_points=s.batch_points)
        work.check_runpoint_ingest(rp, r["ingest"]["runpoint"])
        if ml_ok:
            _peer(r["ingest"], "mlflow", ctx.smoke, lambda: _mlflow_ingest(ml, ml_db, logs, s))
        print("  runpoint read ...", flush=True)
        r["read"]["runpoint"] = work.runpoint_read(rp, s.read_points, min(3, s.repeats))
        if ml_ok:
            _peer(r["read"], "mlflow", ctx.smoke, lambda: work.mlflow_read(
                ml["server"]["url"], ml["server"]["experiments"]["read"], s.mlflow_read_points, min(3, s.repeats), logs, s.creators))
        print("  runpoint search ...", flush=True)
        setup = work.create_search_runs("runpoint", rp, s.search_runs, s.creators, logs)
        r["search"]["runpoint"] = {**work.runpoint_search(rp, s.search_runs, 100, s.repeats), "setup_s": setup}
        if ml_ok:
            _peer(r["search"], "mlflow", ctx.smoke, lambda: _mlflow_search(ml, logs, s))
        folder = workdir / "checkpoint"
        total = uploads.make_checkpoint(folder, s.upload_files, s.upload_file_mib * 2**20)
        r["upload"]["bytes"] = total
        if mode == "server":
            print("  runpoint upload ...", flush=True)
            r["upload"]["runpoint (presigned PUT to S3)"] = uploads.runpoint_upload(rp, folder, "ckptpresigned")
            r["upload"]["runpoint (proxied through the server)"] = _proxied_upload(services, rp_db, folder, token)
        if ml_ok:
            _peer(r["upload"], "MLflow log_artifacts (artifact proxy)", ctx.smoke,
                  lambda: uploads.mlflow_upload(ml["server"]["url"], ml["server"]["experiments"]["ckpt"], folder))
        r["upload"]["boto3 upload_file (plain S3)"] = uploads.boto3_upload(endpoint, "plain", folder)
        if mode == "server":
            print("  run.log caller cost, local root vs server root ...", flush=True)
            r["caller"] = _caller_cost(rp, workdir, s.log_steps)
    r["mlflow_server"] = ml["server"]
    return r


def _proxied_upload(services: Services, db: str, folder: Any, env: dict[str, str]) -> dict[str, Any]:
    """The upload through a second runpoint server that hands out no presigned URLs, if it has that switch."""
    try:
        url = services.runpoint(db, "s3://runpoint-artifacts/runs", RUNPOINT_WORKERS, PROXY_ONLY,
                                name="runpoint-server-proxy", env=env)
    except RuntimeError as exc:
        if "No such option" not in str(exc):
            raise
        return {"error": f"runpoint server has no {' '.join(PROXY_ONLY)} switch: nothing sends uploads through it"}
    return uploads.runpoint_upload(url, folder, "ckptproxied")


def _caller_cost(url: str, workdir: Any, steps: int) -> dict[str, Any]:
    """run.log's cost to the training loop with a local root and with the server's (spool + replicator), same run."""
    from .bench_logging import PEERS, _measure_peer

    local = PEERS["runpoint"]
    remote = {**local, "setup": f"run = rp.init(project='bench', root={url!r}, console=False)"}
    os.environ["RUNPOINT_SPOOL"] = str(workdir / "spool")
    os.environ["RUNPOINT_SYNC_TIMEOUT"] = "600"
    try:
        return {"local root": _measure_peer("local root", local, workdir, steps),
                "server root": _measure_peer("server root", remote, workdir, steps)}
    finally:
        os.environ.pop("RUNPOINT_SPOOL", None)
        os.environ.pop("RUNPOINT_SYNC_TIMEOUT", None)


def _start_mlflow(services: Services, db_url: str) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    url = services.mlflow(db_url.replace("postgresql://", "postgresql+psycopg://", 1), "s3://mlflow-artifacts", MLFLOW_WORKERS)
    client = MlflowClient(tracking_uri=url)
    experiments = {name: client.create_experiment(name) for name in ("ingest", "read", "search", "ckpt")}
    return {"url": url, "experiments": experiments, "version": package_version("mlflow")}


def _mlflow_ingest(ml: dict[str, Any], db_url: str, logs: Any, s: Sizes) -> dict[str, Any]:
    """As many clients as runpoint had; if MLflow's server fails them (at its defaults, its connection pool of
    5 + 10 per worker runs dry and requests fail after 30 s), that is recorded and half as many try again."""
    failed: list[dict[str, Any]] = []
    for clients_n in dict.fromkeys((s.mlflow_clients, max(1, s.mlflow_clients // 2))):
        try:
            figures = work.ingest("mlflow", ml["server"]["url"], logs, clients_n=clients_n, keys=s.keys, steps=s.mlflow_steps,
                                  batch_points=1000, experiment_id=ml["server"]["experiments"]["ingest"])
        except RuntimeError as exc:
            failed.append({"clients": clients_n, "error": (str(exc).strip().splitlines() or ["?"])[-1][:300]})
            if clients_n == max(1, s.mlflow_clients // 2):
                raise
            continue
        work.check_mlflow_ingest(db_url, figures)
        return {**figures, "failed_attempts": failed}
    raise AssertionError("unreachable")


def _mlflow_search(ml: dict[str, Any], logs: Any, s: Sizes) -> dict[str, Any]:
    url, experiment = ml["server"]["url"], ml["server"]["experiments"]["search"]
    setup = work.create_search_runs("mlflow", url, s.search_runs, s.creators, logs, experiment_id=experiment)
    return {**work.mlflow_search(url, experiment, s.search_runs, 100, s.repeats), "setup_s": setup}


def _ratio(ours: dict[str, Any], theirs: dict[str, Any] | None, key: str, higher_is_better: bool = True) -> str:
    if not theirs or "error" in theirs or "error" in ours:
        return ""
    value = ours[key] / theirs[key] if higher_is_better else theirs[key] / ours[key]
    return f"{value:.1f}x"


def _row_or_error(name: str, figures: dict[str, Any], cells: Callable[[dict[str, Any]], list[Any]], width: int) -> list[Any]:
    if "error" in figures:
        return [name, "failed: " + figures["error"], *[""] * (width - 2)]
    return [name, *cells(figures)]


def _tables(r: dict[str, Any], s: Sizes, label: str) -> list[Table]:
    ingest, read, search, upload = r["ingest"], r["read"], r["search"], r["upload"]
    ml_i, ml_r, ml_s = ingest.get("mlflow"), read.get("mlflow"), search.get("mlflow")
    rows = [_row_or_error(label, ingest["runpoint"], lambda f: [
        f"{f['clients']} x {f['points'] // f['clients']:,}", f["batch_points"], f["points_per_s"], f["p50_batch_ms"],
        f["p99_batch_ms"], _ratio(f, ml_i, "points_per_s")], 7)]
    for attempt in (ml_i or {}).get("failed_attempts", []):
        rows.append([f"MLflow server, {attempt['clients']} clients", "failed: " + attempt["error"], "", "", "", "", ""])
    if ml_i:
        rows.append(_row_or_error("MLflow server", ml_i, lambda f: [
            f"{f['clients']} x {f['points'] // f['clients']:,}", 1000, f["points_per_s"], f["p50_batch_ms"],
            f["p99_batch_ms"], "1.0x"], 7))
    tables = [Table(["server", "clients x points", "points/batch", "points/s", "p50 batch ms", "p99 batch ms", "points/s vs MLflow"],
                    rows, title="1. Ingest: concurrent clients, each logging its own run",
                    note="Every point was read back and counted: each stored exactly once. MLflow gets fewer points per "
                         "client so that its part ends in about a minute, and as many clients as runpoint unless its "
                         "server failed them (a failed row above; then half as many); its batches are log_batch's limit "
                         "of 1000 metrics.")]
    rows = [_row_or_error(label, read["runpoint"], lambda f: [f["points"], f["seconds"], f["points_per_s"],
                                                              _ratio(f, ml_r, "points_per_s"), f["setup_s"]], 6)]
    if ml_r:
        rows.append(_row_or_error("MLflow server", ml_r, lambda f: [f["points"], f["seconds"], f["points_per_s"], "1.0x",
                                                                    f["setup_s"]], 6))
    tables.append(Table(["server", "points", "read s", "points/s", "vs MLflow", "writing them s"], rows,
                        title="2. Read one metric back whole",
                        note="Best of 3 reads. MLflow's metric is shorter (it took minutes to log a million points); "
                             "compare points/s. MLflow's was logged by concurrent clients, 1000 points per call."))
    rows = [_row_or_error(label, search["runpoint"], lambda f: [s.search_runs, f["setup_s"], s.search_runs / f["setup_s"],
                                                                f["median_ms"], f["best_ms"], f["rows"],
                                                                _ratio(f, ml_s, "median_ms", False)], 8)]
    if ml_s:
        rows.append(_row_or_error("MLflow server", ml_s, lambda f: [s.search_runs, f["setup_s"], s.search_runs / f["setup_s"],
                                                                    f["median_ms"], f["best_ms"], f["rows"], "1.0x"], 8))
    tables.append(Table(["server", "runs", "creating them s", "runs created/s", "query median ms", "best ms", "rows",
                         "speed vs MLflow"], rows, title="3. Search: filtered, sorted, limited",
                        note=f"Runs created by {s.creators} concurrent clients, two requests per run on each server. "
                             f"Query timed {s.repeats} times after one warm-up."))
    plain = upload.get("boto3 upload_file (plain S3)")
    rows = [_row_or_error(name, f, lambda f: [f["bytes"] / 2**20, f["seconds"], f["mib_per_s"],
                                              _ratio(f, plain, "mib_per_s")], 5)
            for name, f in upload.items() if name != "bytes"]
    tables.append(Table(["upload", "MiB", "seconds", "MiB/s", "speed vs plain boto3"], rows,
                        title=f"4. Checkpoint upload to S3 (moto): {s.upload_files} files of {s.upload_file_mib} MiB",
                        note="One upload each. runpoint and MLflow also upload the manifest / every file of the folder."))
    caller = r.get("caller")
    if caller:
        base = caller["local root"]["mean_us"]
        rows = [[name, f["mean_us"], f["p99_us"], f["max_us"], f["cpu_us"], f["durable_s"], f"{f['mean_us'] / base:.2f}x"]
                for name, f in caller.items()]
        tables.append(Table(["runpoint root", "caller µs/step", "p99 µs", "worst µs", "process CPU µs/step",
                             "finish s", "caller cost vs local"], rows,
                            title=f"5. run.log with a server root: {s.log_steps:,} steps of 5 scalars",
                            note="The same loop as the logging benchmark. With a server root the run records into the "
                                 "local spool and a background thread ships it to this server every second; 'finish' "
                                 "includes the last pass that sends everything. Target: caller cost within 1.5x of local."))
    return tables


def run(ctx: Context) -> Section:
    s = sizes(ctx)
    mode = runpoint_mode()
    if ctx.smoke and find_spec("mlflow") is None:
        print("  (mlflow is not installed: runpoint's side only)")
    previous_token = os.environ.get("RUNPOINT_TOKEN")
    os.environ["RUNPOINT_TOKEN"] = work.TOKEN  # this process's own HttpStore reads it, as any client does
    try:
        results = _measure(ctx, s, mode)
    finally:
        if previous_token is None:
            os.environ.pop("RUNPOINT_TOKEN", None)
        else:
            os.environ["RUNPOINT_TOKEN"] = previous_token
    label = (f"runpoint server ({RUNPOINT_WORKERS} workers)" if mode == "server"
             else "runpoint PostgresStore in the clients (stand-in, NO server)")
    intro = (__doc__ or "").split("\n", 1)[1]
    if mode == "direct":
        intro += ("\n**Stand-in:** this build has no team server, so runpoint's rows are its clients writing to "
                  "PostgreSQL directly (`open_store(postgresql://…)`), no HTTP; the checkpoint upload has no runpoint row.\n")
    ml = results.get("mlflow_server") or {}
    intro += f"\nMLflow {ml.get('version') or package_version('mlflow') or '(not installed)'}, mlflow server --workers {MLFLOW_WORKERS}."
    return Section(TITLE, intro=intro, tables=_tables(results, s, label),
                   numbers={"mode": mode, "sizes": asdict(s), **results})
