"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

One ``streamlit run app.py`` server on 127.0.0.1 (a free port, a temporary
workspace) serves the whole module. Screenshots of every page go to
tests/artifacts/ (git-ignored). Skipped, with the reason, only when Chromium or
the playwright package is missing (CI installs both: see .ci/run).
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("LOOPLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
TIMEOUT_MS = 180_000

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:                                   # pragma: no cover - depends on the machine
    sync_playwright = None


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -r requirements.txt)"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    return None


if _skip_reason():
    pytest.skip(_skip_reason(), allow_module_level=True)
expect.set_options(timeout=TIMEOUT_MS)


def _heading(page, name):
    return page.get_by_test_id("stMainBlockContainer").get_by_role("heading", name=name,
                                                                  exact=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, track_file):
    ws = tmp_path_factory.mktemp("browser-ws")
    port = _free_port()
    env = dict(os.environ, LOOPLAB_WORKSPACE=str(ws))
    log = open(tmp_path_factory.mktemp("server-log") / "streamlit.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            log.seek(0)
            proc.kill()
            pytest.fail(f"streamlit did not start:\n{log.read()[-3000:]}")
        time.sleep(0.5)
    yield {"url": url, "workspace": ws, "track_file": track_file}
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def track_file(tmp_path_factory):
    from engine.synth import synth_track

    path = tmp_path_factory.mktemp("upload") / "Browser Groove 124.wav"
    return synth_track(124.0, n_bars=16, seed=5).write(path)


def _page(browser, **kw):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1800}, accept_downloads=True, **kw)
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return ctx, page


def _idle(page):
    """Wait until the script run finished (the running indicator is gone)."""
    page.wait_for_timeout(400)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=TIMEOUT_MS)
    page.wait_for_timeout(200)


def _shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _workspace(server):
    from engine.library import Workspace

    return Workspace(server["workspace"])


def _top_loops(server, k=5):
    """The uploaded track's id and top loops (added through the engine if a test runs alone)."""
    from engine.loopview import rank_view

    ws = _workspace(server)
    if ws.n_tracks() == 0:
        assert ws.ingest([server["track_file"]])[0].ok
    tid = ws.tracks()["track_id"].iloc[0]
    return tid, rank_view(ws.load_analysis(tid), top_k=k)[1]


def test_upload_a_track_and_see_its_candidates(server, browser, track_file, tmp_path):
    ctx, page = _page(browser)
    page.goto(server["url"])
    expect(_heading(page, "LoopLab")).to_be_visible()
    _idle(page)
    _shot(page, "home_empty")
    page.goto(f"{server['url']}/upload")
    _idle(page)
    broken = tmp_path / "broken download.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + b"\x00" * 64)
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
        [str(track_file), str(broken)])
    button = page.get_by_role("button", name="Add and analyse 2 files")
    expect(button).to_be_enabled()
    button.click()
    expect(page.get_by_text("Last run")).to_be_visible()
    _idle(page)
    rows = page.locator("[data-testid='stDataFrame']")
    expect(rows).to_contain_text("Browser Groove 124.wav")
    # the table is a canvas grid: read its rows from the workspace's run record instead
    run = _workspace(server).runs("ingest", 1)[0]["summary"]
    assert [r["ok"] for r in run] == [True, False]
    assert run[1]["error"].startswith("broken download.wav: ") and "Traceback" not in run[1]["error"]
    expect(page.locator("[data-testid='stException']")).to_have_count(0)
    _shot(page, "upload")
    page.get_by_role("button", name="Open the loop finder").click()
    expect(_heading(page, "Loop finder")).to_be_visible()
    expect(page.get_by_text("Top 5 loops")).to_be_visible()
    _idle(page)
    expect(page.get_by_text("124.0 BPM · 4/4").first).to_be_visible()
    page.wait_for_function("() => document.querySelectorAll('audio').length >= 6")
    _shot(page, "loop_finder")
    ctx.close()


def test_a_loop_plays_with_its_exact_length(server, browser):
    tid, loops = _top_loops(server)
    want = ((loops["end_sample"] - loops["start_sample"]) / 44100.0).tolist()
    ctx, page = _page(browser)
    page.goto(f"{server['url']}/loop_finder?track={tid}")
    expect(page.get_by_text("Top 5 loops")).to_be_visible()
    _idle(page)
    page.wait_for_function(f"() => document.querySelectorAll('audio').length >= {len(want) + 1}")
    audio = page.locator("audio")
    # the selected loop (#1), then one player per loop in rank order
    durations = []
    for i in range(audio.count()):
        el = audio.nth(i)
        el.evaluate("a => new Promise(r => a.readyState >= 1 ? r() : "
                    "a.addEventListener('loadedmetadata', () => r(), {once: true}))")
        durations.append(el.evaluate("a => a.duration"))
    assert durations[0] == pytest.approx(want[0], abs=1e-3)
    assert durations[1:1 + len(want)] == pytest.approx(want, abs=1e-3)
    # play loop #1 from just before its end: it wraps around to its start and keeps playing
    first = audio.nth(0)
    first.evaluate("a => { a.muted = true; a.currentTime = a.duration - 0.4; "
                   "window.__looped = false; a.addEventListener('timeupdate', () => { "
                   "if (a.currentTime < 1.0 && !a.paused) window.__looped = true; }); a.play(); }")
    page.wait_for_function("() => window.__looped === true", timeout=30_000)
    assert first.evaluate("a => !a.paused")
    ctx.close()


def test_click_a_region_or_a_row_to_select_a_loop(server, browser):
    tid, loops = _top_loops(server)
    ctx, page = _page(browser)
    page.goto(f"{server['url']}/loop_finder?track={tid}")
    expect(page.get_by_text("Top 5 loops")).to_be_visible()
    _idle(page)
    selected = page.locator("h4").first
    expect(selected).to_contain_text("Selected: loop #1")
    regions = page.locator(".js-plotly-plot .barlayer .point")
    expect(regions).to_have_count(5)
    regions.filter(has_text="#3").click(force=True)   # the region labelled #3
    expect(selected).to_contain_text("Selected: loop #3")
    _idle(page)
    box = page.locator("[data-testid='stDataFrame']").first.bounding_box()
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 35 * 3 + 17)     # row 4's checkbox
    expect(selected).to_contain_text("Selected: loop #4")
    ctx.close()


def test_double_tempo_changes_the_grid(server, browser):
    tid, _ = _top_loops(server)
    ctx, page = _page(browser)
    page.goto(f"{server['url']}/loop_finder?track={tid}")
    expect(page.get_by_text("Top 5 loops")).to_be_visible()
    _idle(page)
    grid = page.locator(".st-key-grid_summary")
    before = grid.inner_text()
    assert "124.0 BPM" in before
    page.get_by_role("button", name="2× tempo").click()
    expect(grid).to_contain_text("248.0 BPM")
    _idle(page)
    after = grid.inner_text()
    n_beats = lambda text: int(text.split(" beats")[0].rsplit("·", 1)[1])  # noqa: E731
    assert n_beats(after) >= 2 * n_beats(before) - 2
    assert "tempo set by you" in after
    _shot(page, "loop_finder_double_tempo")
    assert _workspace(server).tracks()["bpm"].iloc[0] == pytest.approx(248.0, abs=0.1)
    page.get_by_role("button", name="Reset grid").click()
    expect(grid).to_contain_text("124.0 BPM · 4/4")
    _idle(page)
    # a typed tempo (what a 3/2 misreading needs): beats and bar lines are found at it
    page.get_by_role("button", name="Set tempo…").click()
    box = page.get_by_label("Tempo (BPM)")
    box.fill("93")
    box.press("Enter")
    _idle(page)
    page.get_by_role("button", name="Set", exact=True).click()
    expect(grid).to_contain_text("93.0 BPM")
    _idle(page)
    assert "tempo set by you" in grid.inner_text()
    _shot(page, "loop_finder_set_tempo")
    # every beat a little late: nudge the grid 10 ms later
    page.get_by_role("button", name="Nudge grid…").click()
    page.get_by_role("button", name="Later ▶").click()
    expect(grid).to_contain_text("grid moved +10 ms")
    _idle(page)
    page.get_by_role("button", name="Reset grid").click()
    expect(grid).to_contain_text("124.0 BPM · 4/4")
    _idle(page)
    ctx.close()


def _check_zip(data: bytes, n_loops: int, mp3: bool = False):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        wavs = [n for n in names if n.endswith(".wav")]
        assert len(wavs) == n_loops and all(n.startswith("Browser Groove 124/") for n in wavs)
        assert "all_loops_metadata.csv" in names and "Browser Groove 124/loops_metadata.csv" in names
        assert "run_summary.json" in names
        assert (sum(n.endswith(".mp3") for n in names) == n_loops) if mp3 else \
            not any(n.endswith(".mp3") for n in names)
        rows = list(csv.reader(io.StringIO(zf.read("all_loops_metadata.csv").decode())))
    header = rows[0]
    assert header[:5] == ["track_id", "start_time", "end_time", "bars", "bpm"]
    for col in ("source_file", "rank", "file", "key", "camelot", "score", "score_source"):
        assert col in header
    assert len(rows) == n_loops + 1
    return names


def test_export_zip_from_the_loop_finder_and_the_export_page(server, browser, tmp_path):
    tid, loops = _top_loops(server)
    ctx, page = _page(browser)
    page.goto(f"{server['url']}/loop_finder?track={tid}")
    expect(page.get_by_text("Top 5 loops")).to_be_visible()
    _idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="ZIP of these 5 loops").click()
    target = tmp_path / "finder.zip"
    dl.value.save_as(target)
    _check_zip(target.read_bytes(), 5)

    page.goto(f"{server['url']}/export")
    expect(_heading(page, "Export")).to_be_visible()
    _idle(page)
    page.get_by_text("MP3 previews").click()
    _idle(page)
    page.get_by_role("button", name="Build the ZIP").click()
    button = page.get_by_role("button", name="Download looplab-loops-")
    expect(button).to_be_visible()
    _idle(page)
    _shot(page, "export")
    with page.expect_download() as dl:
        button.click()
    target = tmp_path / "export.zip"
    dl.value.save_as(target)
    _check_zip(target.read_bytes(), len(loops), mp3=True)
    ctx.close()


def test_two_browsers_labelling_at_once_lose_nothing(server, browser):
    tid, loops = _top_loops(server)
    before = len(_workspace(server).labels(latest_only=False))
    pages = []
    for _ in range(2):
        ctx, page = _page(browser)
        page.goto(f"{server['url']}/loop_finder?track={tid}")
        pages.append((ctx, page))
    for _, page in pages:
        expect(page.get_by_text("Top 5 loops")).to_be_visible()
        _idle(page)
    a, b = pages[0][1], pages[1][1]
    good_a = a.locator("[class*='st-key-all_'][class*='_good'] button[data-testid^='stBaseButton']").filter(visible=True)
    bad_b = b.locator("[class*='st-key-all_'][class*='_bad'] button[data-testid^='stBaseButton']").filter(visible=True)
    clicks = 0
    for i in range(4):                      # both sessions' reruns write at the same time
        good_a.nth(i).click()
        bad_b.nth(i).click()
        clicks += 2
        _idle(a)
        _idle(b)
    deadline = time.time() + 60
    while time.time() < deadline:
        labels = _workspace(server).labels(latest_only=False)
        if len(labels) - before >= clicks:
            break
        time.sleep(0.5)
    new = labels.iloc[before:]
    assert len(new) == clicks
    assert sorted(new["label"].value_counts().to_dict().items()) == [("bad", 4), ("good", 4)]
    assert new["client"].nunique() == 2
    _shot(b, "loop_finder_labels")
    for ctx, _ in pages:
        ctx.close()
