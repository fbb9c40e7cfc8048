"""The dashboard's grouped compare: /api/groups over HTTP, and the grouped view in headless Chromium.

Two configs with three seeds each, whose val/acc curves are known, so the group means, the
min-max band and the mean curve can be checked against numpy here.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from runpoint.store import open_store

from .dashboard_fixtures import browser_or_skip, running_server, screenshot
from .test_compare_stats_cli import add_run

pytest.importorskip("fastapi")

FINALS = {0.1: [0.80, 0.82, 0.81], 0.2: [0.86, 0.88, 0.90]}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("groups-dash") / "runpoint"
    root.mkdir()
    store = open_store(root, create=True)
    ids = [add_run(store, f"lr{lr}-s{seed}", {"training.lr": lr, "training.seed": seed}, ("seeds",), final)
           for lr, finals in FINALS.items() for seed, final in enumerate(finals)]
    store.close()
    return root, ids


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, list[str]]):  # noqa: ANN201
    with running_server(seeded[0]) as server:
        yield server


def test_groups_api_gives_statistics_and_mean_curves_with_a_band(server, seeded) -> None:  # noqa: ANN001
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        response = client.get("/api/groups", params=[("runs", ",".join(seeded[1])), ("metric", "val/acc"), ("curve", "val/acc")])
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["differing"] == {"training.lr": [0.1, 0.2]} or data["differing"] == {"training.lr": [0.2, 0.1]}
        for group in data["groups"]:
            finals = FINALS[group["params"]["training.lr"]]
            assert group["n"] == 3 and group["ignored"] == {"training.seed": [0, 1, 2]}
            assert group["metrics"]["val/acc"]["final"]["mean"] == pytest.approx(np.mean(finals))
            curve = group["curves"]["val/acc"]
            assert curve["steps"] == [0, 5, 10] and curve["n"] == [3, 3, 3]
            assert curve["mean"] == pytest.approx([np.mean(finals) - 0.2, np.mean(finals) + 0.005, np.mean(finals)])
            assert curve["low"][-1] == pytest.approx(min(finals)) and curve["high"][-1] == pytest.approx(max(finals))
            assert curve["ci_low"][-1] < curve["mean"][-1] < curve["ci_high"][-1]
        by_tag = client.get("/api/groups", params={"runs": "tag:seeds", "ignore": "nothing"}).json()
        assert len(by_tag["groups"]) == 6 and "val/acc" in by_tag["groups"][0]["metrics"]  # metrics with a direction
        assert client.get("/api/groups", params={"runs": "nope"}).status_code == 404
        assert client.get("/api/openapi.json").json()["paths"]["/api/groups"]


@pytest.mark.slow  # Chromium and a server: about 8 s on 2 busy cores
def test_grouped_compare_view_shows_each_group_and_its_band(server, seeded) -> None:  # noqa: ANN001
    manager, browser = browser_or_skip()
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(20_000)
        page.goto(server.token_url)
        page.goto(server.url + "#/compare?runs=" + ",".join(seeded[1]))
        page.locator("#metric-chips .chip[data-key='val/acc']").wait_for()
        page.locator("#group-toggle").check()
        rows = page.locator("#group-stats tbody tr")
        rows.nth(1).wait_for()
        assert rows.count() == 2
        texts = rows.all_inner_texts()
        high = next(text for text in texts if "training.lr=0.2" in text)
        assert "0.88 ± 0.02" in high and "\t3\t" in high
        assert "groups differ in training.lr" in page.locator("#group-summary").inner_text()
        card = page.locator("#group-charts .chart-card[data-key='val/acc']")
        card.locator("canvas").wait_for()
        assert card.locator(".u-legend .u-series").count() == 1 + 3 * 2  # x, then mean/high/low per group
        path = screenshot(page, "compare-groups")
        assert path.stat().st_size > 10_000
        assert errors == [], errors
    finally:
        browser.close()
        manager.stop()
