"""The dashboard's alerts in headless Chromium: the badge on the runs table and the list on a run's page."""

from __future__ import annotations

import math

import pytest

from .dashboard_fixtures import browser_or_skip, running_server, screenshot

pytest.importorskip("fastapi")


@pytest.mark.slow
def test_runs_table_badge_and_run_page_list_show_the_run_s_alerts(tmp_path) -> None:
    import runpoint as rp

    root = tmp_path / "runpoint"
    with rp.init(project="vision", name="spiky", root=root, console=False, system_metrics=False) as run:
        for step in range(200):
            run.log({"train/loss": 50.0 if step == 150 else 1.0 / (step + 1), "grad/norm": math.nan if step == 120 else 1.0})
        run.alert("val/acc below baseline", "0.71 < 0.80 (baseline run 2p5f)", level="error")
    with rp.init(project="vision", name="calm", root=root, console=False, system_metrics=False) as calm:
        calm.log({"train/loss": 0.5})
    manager, browser = browser_or_skip()
    try:
        with running_server(root) as server:
            page = browser.new_page(viewport={"width": 1300, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(20_000)
            page.goto(server.token_url)
            page.goto(server.url + "#/runs")
            badge = page.locator(f"tr[data-run='{run.id}'] .alert-badge")
            badge.wait_for()
            assert badge.inner_text() == "⚠ 3" and "error" in badge.get_attribute("class")
            assert badge.get_attribute("title") == "alerts: 2 error, 1 warning"
            assert page.locator(f"tr[data-run='{calm.id}'] .alert-badge").count() == 0
            screenshot(page, "alerts-runs-table")
            page.goto(server.url + f"#/run/{run.id}")
            rows = page.locator("#run-alerts tbody tr")
            rows.nth(2).wait_for()
            assert page.locator("#run-alerts h2").inner_text() == "Alerts (3)"
            texts = rows.all_inner_texts()
            assert "val/acc below baseline" in texts[0] and "0.71 < 0.80" in texts[0]  # newest first
            assert "train/loss spiked at step 150" in texts[1] and "grad/norm became NaN at step 120" in texts[2]
            screenshot(page, "alerts-run-page")
            assert errors == []
    finally:
        browser.close()
        manager.stop()
