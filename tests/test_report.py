"""`runpoint report`: the HTML and Markdown files hold every section, inline images, and escaped text."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import sqlite3
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import runpoint as rp

from .conftest import cli, run_script

SECTIONS = ["run", "summary", "best", "metrics", "plots", "media", "checkpoints", "config", "metadata", "console"]


class _Page(HTMLParser):
    """Section ids, images and external references of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section":
            self.sections.append(attributes.get("id", ""))
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            value = attributes.get(name) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)


@pytest.fixture
def reported_run(root, tmp_path) -> Path:
    result = run_script(tmp_path, root, """
        import math, numpy as np, runpoint as rp
        config = {"training": {"lr": 0.01, "api_key": "sk-very-secret"}, "model": {"name": "<b>mlp</b>"}}
        with rp.init(project="p", id="rep1", name="<script>alert(1)</script>", config=config,
                     notes="notes with <i>markup</i> & ampersands", tags=["a|b"], system_metrics=False) as run:
            run.monitor("val/acc", "max")
            for step in range(60):
                loss = 2.0 / (step + 1)
                run.log({"train/loss": loss, "train/acc": 1 - loss / 2}, step=step)
                if step % 10 == 9:
                    run.log({"val/loss": loss * 1.1, "val/acc": 1 - loss / 1.8}, step=step)
                print(f"console line {step}")
            run.log({"samples": rp.Image(np.full((8, 8, 3), 200, np.uint8), caption="a grey square"),
                     "notes": rp.Text("generated <text>"),
                     "preds": rp.Table([[1, "cat"], [2, "dog|wolf"]], columns=["id", "label"]),
                     "weights": rp.Histogram(np.arange(100.0))}, step=59)
            run.log({"train/loss": math.nan}, step=60)
            run.summary["best/val_acc"] = 0.97
    """)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(root / "runpoint.db") as conn:  # the checkpoint registry, as the checkpoint manager fills it
        conn.executemany(
            "INSERT INTO checkpoints (run_id, step, path, bytes, metrics, is_best, hash, created_at, deleted_at)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            [("rep1", 29, "checkpoints/step-000029", 2048, json.dumps({"val/loss": 0.07}), 1, "abc", time.time(), None),
             ("rep1", 59, "checkpoints/step-000059", 4096, json.dumps({"val/loss": 0.04}), 0, "def", time.time(), None)],
        )
    return root


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_the_html_report_is_self_contained_and_has_every_section(reported_run, tmp_path) -> None:
    result = cli(reported_run, "report", "rep1", "--out", str(tmp_path / "out"), "--lines", "5", "--json")
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)
    html = Path(files["html"]).read_text()
    page = _Page()
    page.feed(html)
    assert page.sections == SECTIONS
    assert page.external == [] and page.scripts == 0  # nothing to fetch, nothing to run
    assert len(page.images) == 3  # the training panel, the logged image and the histogram's bars
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        with PILImage.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as image:
            image.verify()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;i&gt;markup&lt;/i&gt; &amp; ampersands" in html and "&lt;b&gt;mlp&lt;/b&gt;" in html
    assert "sk-very-secret" not in html and "training.api_key" in html
    text = re.sub(r"<[^>]+>", " ", html)
    assert re.search(r"train/loss\s+first became NaN at step 60", text)
    assert re.search(r"val/acc \(monitored\)\s+0\.981481\s+59\s+higher", text)  # best value, its step, the goal
    assert re.search(r"checkpoints/step-000029\s+2\.0 KiB\s+val/loss 0\.07\s+yes", text)
    assert "checkpoints/step-000059" in text
    assert "generated &lt;text&gt;" in html and "dog|wolf" in text
    assert "console line 59" in text and "console line 54" not in text  # --lines 5
    assert "lr" in text and "0.01" in text and "3.11" in text  # config and metadata (python version)


def test_the_markdown_report_links_its_images(reported_run, tmp_path) -> None:
    result = cli(reported_run, "report", "rep1", "--out", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "r.md").read_text()
    for heading in ("Run", "Summary", "Best metrics", "Metrics", "Plots", "Media", "Checkpoints", "Config",
                    "Metadata", "Console"):
        assert f"\n## {heading}\n" in markdown, heading
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert links == ["r_files/training.png", "r_files/media-samples.png", "r_files/media-weights.png"]
    for link in links:
        with PILImage.open(tmp_path / link) as image:
            image.verify()
    assert "dog\\|wolf" in markdown  # table cells are escaped
    assert "sk-very-secret" not in markdown
    outside_fences = re.sub(r"(`{3,})text\n.*?\n\1", "", markdown, flags=re.S)
    assert "<script>" not in outside_fences and "<i>markup" not in outside_fences  # names and notes are inert
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in outside_fences


def test_a_media_row_naming_a_file_outside_the_run_is_not_embedded(reported_run, tmp_path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"PRIVATE KEY " * 100)
    with sqlite3.connect(reported_run / "runpoint.db") as conn:  # as an imported archive's store could say
        assert conn.execute("UPDATE media SET path = ? WHERE run_id = 'rep1' AND key = 'samples'",
                            (str(secret),)).rowcount == 1
    result = cli(reported_run, "report", "rep1", "--out", str(tmp_path / "r.html"))
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "r.html").read_text()
    assert base64.b64encode(b"PRIVATE KEY " * 3)[:24].decode() not in html
    page = _Page()
    page.feed(html)
    assert len(page.images) == 2  # the training panel and the histogram; not the secret


def test_a_report_of_a_bare_run_says_what_is_missing(root, tmp_path) -> None:
    with rp.init(project="p", id="bare", root=root, console=False, system_metrics=False):
        pass
    result = cli(root, "report", "bare", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "report-bare.html").read_text()
    for message in ("Nothing was set on run.summary.", "The run logged no metrics.", "The run saved no checkpoints.",
                    "No console output was captured."):
        assert message in html
    page = _Page()
    page.feed(html)
    assert "media" not in page.sections and page.images == []


def test_report_refuses_a_bad_output(reported_run, tmp_path) -> None:
    result = cli(reported_run, "report", "rep1", "--out", str(tmp_path / "report.pdf"))
    assert result.returncode == 1 and "give a .html file or a directory" in result.stderr


def _chromium():
    playwright = pytest.importorskip("playwright.sync_api")
    manager = playwright.sync_playwright().start()
    for options in ({}, {"executable_path": shutil.which("chromium") or "", "args": ["--no-sandbox"]}):
        try:
            return manager, manager.chromium.launch(**options)
        except Exception:
            continue
    manager.stop()
    pytest.skip("no headless Chromium (apt-get install chromium, or playwright install chromium)")


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_the_report_renders_in_a_browser_with_every_image_loaded(reported_run, tmp_path) -> None:
    result = cli(reported_run, "report", "rep1", "--out", str(tmp_path / "page.html"))
    assert result.returncode == 0, result.stderr
    manager, browser = _chromium()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((tmp_path / "page.html").as_uri())
        sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert sizes and all(done and width > 0 and height > 0 for done, width, height in sizes)
        assert page.evaluate("document.querySelectorAll('section h2').length") == len(SECTIONS)
        assert page.evaluate("document.title").endswith("runpoint report")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    finally:
        browser.close()
        manager.stop()
    with PILImage.open(tmp_path / "page.png") as shot:
        assert shot.size[1] > 2000  # the whole page, plots included
        pixels = np.asarray(shot.convert("L"))
        assert pixels.std() > 10  # not a blank page
