"""The dashboard in headless Chromium (Playwright) against a real server and store.

Screenshots land in test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from runpoint.store.sqlite import SQLiteStore

from .dashboard_fixtures import browser_or_skip, make_runs, running_server, screenshot

pytest.importorskip("fastapi")

# How many non-background pixels a chart's canvas has: proof that lines were drawn.
INKED_PIXELS = """(card) => {
  const canvas = card.querySelector("canvas");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && (data[i] < 200 || data[i + 1] < 200 || data[i + 2] < 200)) inked++;
  }
  return inked;
}"""


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("dash-browser") / "runpoint"
    return root, make_runs(root)


@pytest.fixture(scope="module")
def server(made: tuple[Path, dict[str, str]]):  # noqa: ANN201
    with running_server(made[0]) as server:
        yield server


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    manager, browser = browser_or_skip()
    yield browser
    browser.close()
    manager.stop()


@pytest.fixture
def page(browser, server):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None)
    page.set_default_timeout(20_000)
    page.goto(server.token_url)  # as `runpoint ui` opens it: the token becomes a cookie
    assert page.url == server.url and server.token and server.token not in page.url
    yield page
    context.close()
    assert errors == [], errors


def test_runs_table_lists_sorts_and_filters(page, server, made) -> None:  # noqa: ANN001
    page.goto(server.url + "#/runs")
    rows = page.locator("#runs-table tbody tr")
    rows.nth(4).wait_for()
    assert rows.count() == 5
    assert page.locator("#runs-table th", has_text="val/acc").count() == 1  # a default metric column
    page.locator("#runs-table th[data-sort='name']").click()
    names = page.locator("#runs-table tbody tr td:nth-child(3) a").all_inner_texts()
    assert names == sorted(names)
    screenshot(page, "runs-table")
    page.locator(".chip[data-status='failed']").click()
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 1")
    assert page.locator("#runs-table tbody tr a").inner_text() == "broken"
    page.locator(".chip[data-status='failed']").click()
    page.locator("input[placeholder^='filter:']").fill("params.training.learning_rate > 2e-3")
    page.locator("input[placeholder^='filter:']").press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 3")


def test_a_page_left_while_it_loads_draws_nothing(page, server, made) -> None:  # noqa: ANN001
    """Navigating on before a page has its data shows only the page navigated to."""
    page.goto(server.url + "#/compare")
    page.evaluate("""async (run) => {
      const tick = () => new Promise((done) => setTimeout(done, 0));
      location.hash = "#/launch"; await tick();
      location.hash = "#/run/" + run; await tick();
      location.hash = "#/runs";
    }""", made[1]["cnn-0"])
    page.locator("#runs-table tbody tr").nth(4).wait_for()
    page.wait_for_load_state("networkidle")
    assert page.locator("#runs-table").count() == 1 and page.locator("#runs-table tbody tr").count() == 5
    assert page.locator("main h1").all_inner_texts() == ["Runs"]
    assert page.locator("#launch-button").count() == 0


def test_run_page_draws_a_chart_of_every_metric(page, server, made) -> None:  # noqa: ANN001
    ids = made[1]
    page.goto(server.url + f"#/run/{ids['cnn-0']}")
    card = page.locator(".chart-card[data-key='train/loss']")
    card.locator("canvas").wait_for()
    page.wait_for_function("() => document.querySelector(\".chart-card[data-key='train/loss']\").dataset.drawn === '300'")
    assert page.locator(".chart-card").count() == 4  # epoch, train/loss, val/acc, checkpoint/save_seconds
    assert card.evaluate(INKED_PIXELS) > 200
    screenshot(page, "run-charts")
    page.get_by_label("Log scale").check()
    page.wait_for_function("() => document.querySelector(\".chart-card[data-key='train/loss'] canvas\") !== null")
    page.locator("select[aria-label='x axis']").select_option("epoch")
    card.locator("canvas").wait_for()
    assert card.evaluate(INKED_PIXELS) > 200
    page.locator(".tabs button[data-tab='checkpoints']").click()
    page.locator("#checkpoints-table tbody tr").wait_for()
    page.locator("#checkpoints-table button", has_text="Verify").click()
    page.get_by_text(re.compile(r"✓ \d+ files ok")).wait_for()
    page.locator(".tabs button[data-tab='media']").click()
    image = page.locator(".gallery img")
    image.wait_for()
    page.wait_for_function("() => document.querySelector('.gallery img').naturalWidth === 4")
    page.locator(".tabs button[data-tab='console']").click()
    page.wait_for_function("() => document.querySelector('#console').textContent.includes('progress 100%')")
    page.locator(".tabs button[data-tab='config']").click()
    assert page.locator("#config-table tbody tr").count() == 3


def test_a_long_series_is_drawn_downsampled(page, server, made) -> None:  # noqa: ANN001
    page.goto(server.url + f"#/run/{made[1]['long']}")
    card = page.locator(".chart-card[data-key='train/loss']")
    page.wait_for_function("() => Number(document.querySelector(\".chart-card[data-key='train/loss']\")?.dataset.total) === 200000")
    drawn = int(card.get_attribute("data-drawn"))
    assert 0 < drawn <= 2 * 4000
    assert card.evaluate(INKED_PIXELS) > 200
    box = card.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.60, box["y"] + 60)  # drag to zoom into a slice
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.64, box["y"] + 60, steps=5)
    page.mouse.up()
    card.locator("button", has_text="reset zoom").wait_for()
    page.wait_for_function(  # the zoomed slice was fetched again: only its points
        "() => Number(document.querySelector(\".chart-card[data-key='train/loss']\").dataset.inRange) < 20000")
    assert card.evaluate(INKED_PIXELS) > 200


def test_two_runs_are_compared_from_the_table(page, server, made) -> None:  # noqa: ANN001
    ids = made[1]
    page.goto(server.url + "#/runs")
    page.locator(f"tr[data-run='{ids['cnn-0']}'] input[type=checkbox]").check()
    page.locator(f"tr[data-run='{ids['cnn-1']}'] input[type=checkbox]").check()
    page.get_by_role("button", name="Compare (2)").click()
    page.wait_for_url("**#/compare?runs=*")
    differing = page.locator("#config-diff tbody tr")
    differing.first.wait_for()
    assert differing.locator("td:first-child").all_inner_texts() == ["model.width", "training.learning_rate"]
    assert page.locator("#config-diff td.diff").count() == 4
    card = page.locator("#compare-charts .chart-card[data-key='val/acc']")
    card.locator("canvas").wait_for()
    assert card.locator(".u-legend .u-series").count() == 3  # x plus one series per run
    assert card.evaluate(INKED_PIXELS) > 100
    best = page.locator("#final-metrics tr", has_text="val/acc").locator("td.best")
    assert best.inner_text() == "0.75"
    screenshot(page, "compare")


@pytest.mark.slow  # a whole demo launched and stopped from the browser, ~15 s
def test_the_demo_is_launched_watched_live_and_stopped(page, server, made) -> None:  # noqa: ANN001
    root = made[0]
    page.goto(server.url + "#/launch")
    page.locator("input[data-path='training.epochs']").fill("1000")
    page.locator("#launch-name").fill("from-the-browser")
    screenshot(page, "launch-form")
    page.locator("#launch-button").click()
    link = page.locator("#launches-table a.run-link")
    link.wait_for(timeout=60_000)
    link.click()
    page.wait_for_url(re.compile(r"#/run/[^/]+"))
    page.locator("#run-name", has_text="from-the-browser").wait_for()
    total = "() => Number(document.querySelector(\".chart-card[data-key='train/loss']\")?.dataset.total) || 0"
    first = page.wait_for_function(total, timeout=60_000).json_value()  # the card may be rebuilt as keys appear
    page.wait_for_function(
        f"() => Number(document.querySelector(\".chart-card[data-key='train/loss']\").dataset.total) > {first}", timeout=30_000
    )  # the chart follows the running run without a reload
    screenshot(page, "run-live")
    page.locator("#stop-run").click()
    page.locator(".run-head .badge[data-status='killed']").wait_for(timeout=60_000)
    run_id = page.url.rsplit("/", 2)[-2] if page.url.endswith("/charts") else page.url.rsplit("/", 1)[-1]
    store = SQLiteStore(root / "runpoint.db", create=False)
    try:
        run = store.get_run(run_id)
        assert run.status.value == "killed" and run.name == "from-the-browser"
        assert store.get_params(run.id)["training.epochs"] == 1000
    finally:
        store.close()
    page.goto(server.url + "#/launch")
    page.locator("#launches-table .badge[data-status='exited']").wait_for()
    deadline = time.monotonic() + 5
    while page.locator("#launches-table button.stop").count() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert page.locator("#launches-table button.stop").count() == 0


def test_a_checkpoint_is_registered_from_its_tab_and_shown_on_the_models_page(page, server, made) -> None:  # noqa: ANN001
    _, ids = made
    page.goto(f"{server.url}#/run/{ids['cnn-0']}/checkpoints")
    row = page.locator("#checkpoints-table tbody tr").first
    row.get_by_role("button", name="Register").click()
    row.get_by_label("model name").fill("cnn-classifier")
    row.get_by_label("alias").fill("champion")
    row.locator(".register-form").get_by_role("button", name="Register").click()
    page.locator("#checkpoints-table a.tag.alias", has_text="cnn-classifier:1").wait_for()

    page.click("[data-nav='models']")
    model_row = page.locator("#models-table tr[data-model='cnn-classifier']")
    assert "champion → v1" in model_row.inner_text()
    model_row.get_by_role("link", name="cnn-classifier").click()
    version = page.locator("#model-versions section[data-version='1']")
    assert "champion" in version.inner_text() and "val/acc = 0.6" in version.inner_text()
    assert "moved" in page.locator("#alias-history").inner_text()
    screenshot(page, "models")
    version.get_by_role("link", name=re.compile(ids["cnn-0"])).click()
    page.wait_for_url(re.compile(f"#/run/{ids['cnn-0']}/checkpoints"))
