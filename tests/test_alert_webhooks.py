"""Alerts sent to real HTTP webhook receivers on loopback: the payloads (generic JSON, Slack), a receiver that
hangs, one that fails then answers, one that always fails; none of them holds back training or the run's end."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import runpoint as rp
from runpoint.alerts import Target, WebhookSender, mask_url
from runpoint.store import AlertRecord, RunStatus, alert_store, open_store


class Receiver:
    """A webhook endpoint on 127.0.0.1: answers ``statuses`` in turn (then 200), or hangs until released."""

    def __init__(self, *, statuses: tuple[int, ...] = (), hang: bool = False) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.statuses = list(statuses)
        self.hang = hang
        self.release = threading.Event()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(body)
                receiver.paths.append(self.path)
                receiver.arrived.set()
                if receiver.hang:
                    receiver.release.wait(60)
                    return
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0001/B0002/s3cr3t-token"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(**kwargs) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def _train(root, alerts, steps=200):
    """A short run in a thread of its own; the test fails (instead of hanging) if finishing it blocks."""
    out: dict = {}

    def body() -> None:
        run = rp.init(project="p", name="hooked", root=root, console=False, system_metrics=False, alerts=alerts)
        for step in range(steps):
            run.log({"train/loss": 1.0 / (step + 1)})
        run.alert("val/acc below baseline", "0.71 < 0.80", level="error")
        run.finish()
        out["run"] = run

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the run's end waited on a webhook"
    return out["run"]


def test_generic_and_slack_payloads_reach_their_receivers(tmp_path, receivers) -> None:
    generic, slack, picky = receivers(), receivers(), receivers()
    run = _train(tmp_path, {"webhooks": [{"url": generic.url}, {"url": slack.url, "format": "slack"},
                                         {"url": picky.url, "min_level": "error"}]}, steps=20)
    (body,) = generic.bodies
    assert body == {"run_id": run.id, "run_name": "hooked", "project": "p", "level": "error", "kind": "user",
                    "title": "val/acc below baseline", "text": "0.71 < 0.80", "step": 19, "key": None,
                    "time": body["time"]}
    (message,) = slack.bodies
    assert message["text"].startswith(":rotating_light: [error] val/acc below baseline") and run.id in message["text"]
    assert message["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn",
                                                                "text": "*:rotating_light: [error] val/acc below baseline*\n0.71 < 0.80"}}
    assert message["blocks"][1]["type"] == "context" and "at step 19" in message["blocks"][1]["elements"][0]["text"]
    assert len(picky.bodies) == 1
    stored = alert_store(open_store(tmp_path)).read_alerts(run.id)
    assert [(a.title, a.level) for a in stored] == [("val/acc below baseline", "error")]


def test_a_hanging_receiver_holds_back_neither_training_nor_the_end_and_the_url_is_masked(tmp_path, receivers, caplog) -> None:
    hanging = receivers(hang=True)
    settings = {"webhooks": [{"url": hanging.url}], "webhook_timeout_s": 0.3, "webhook_retries": 1, "close_wait_s": 0.5}
    with caplog.at_level(logging.WARNING, logger="runpoint"):
        run = _train(tmp_path, settings)
    assert not hanging.release.is_set()  # the receiver never answered, yet the run finished
    assert open_store(tmp_path).get_run(run.id).status is RunStatus.COMPLETED
    assert len(open_store(tmp_path).read_metric(run.id, "train/loss")) == 200
    assert hanging.bodies and hanging.bodies[0]["title"] == "val/acc below baseline"
    assert "s3cr3t-token" not in caplog.text and "T0001" not in caplog.text


def test_a_failed_delivery_is_retried_until_it_arrives_and_gives_up_after_its_retries(receivers, caplog) -> None:
    flaky, broken = receivers(statuses=(500,)), receivers(statuses=(500, 502, 503, 500))
    sender = WebhookSender([Target(flaky.url), Target(broken.url, "slack")], retries=2, backoff_s=0.01)
    alert = AlertRecord("r1", 1.0, "warning", "spike", "train/loss spiked at step 5", step=5, key="train/loss")
    with caplog.at_level(logging.WARNING, logger="runpoint"):
        sender.send(alert, run_name="n", project="p")
        assert sender.close(wait_s=30)
    assert len(flaky.bodies) == 2 and flaky.bodies[0] == flaky.bodies[1]  # 500, then 200
    assert len(broken.bodies) == 3  # the first try and 2 retries, then it gave up
    assert sender.sent == 1 and sender.failed == 1
    assert "could not send alert 'train/loss spiked at step 5' to webhook http://127.0.0.1" in caplog.text
    assert "HTTP 503" in caplog.text and "s3cr3t" not in caplog.text


def test_the_queue_is_bounded_and_what_overflows_is_dropped_not_waited_for(receivers) -> None:
    hanging = receivers(hang=True)
    sender = WebhookSender([Target(hanging.url)], timeout_s=30, queue_size=2)
    alert = AlertRecord("r1", 1.0, "warning", "user", "t")
    sender.send(alert, run_name="n", project="p")
    assert hanging.arrived.wait(10)  # the first is in flight
    for _ in range(9):
        sender.send(alert, run_name="n", project="p")
    assert sender.dropped == 7
    assert sender.close(wait_s=0.2) is False
    sender.send(AlertRecord("r1", 1.0, "info", "user", "t"), run_name="n", project="p")  # under min_level: not queued
    assert sender.dropped == 7


def test_webhook_urls_are_masked() -> None:
    assert mask_url("https://hooks.slack.com/services/T000/B000/XXXX") == "https://hooks.slack.com/services/********"
    assert mask_url("https://user:pw@example.com/hook?token=abc") == "https://example.com/hook/********"
    assert mask_url("http://127.0.0.1:9/") == "http://127.0.0.1:9"
