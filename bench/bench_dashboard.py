"""Dashboard responsiveness with a 50-track workspace.

Run from the repository root::

    python bench/bench_dashboard.py [--tracks 50] [--no-browser]

Measures, with a workspace of ``--tracks`` analysed tracks (engine.synth, 16
bars each, tempos 90-150 BPM, every key; built once into
/tmp/looplab-bench-dashboard-ws and re-used):

* **time to first render of each page** (target < 2 s): in Chromium (Playwright,
  Debian's /usr/bin/chromium) from ``page.goto`` until the page's main content is
  on screen and the script run has finished, on a fresh ``streamlit run app.py``
  server (cold: nothing in Streamlit's caches; the engine's disk cache holds the
  analyses), then again (warm). The server-side script time (AppTest) is
  printed too.
* **K slider to updated table** (target < 0.5 s): in the browser, from the key
  press that moves the slider until the table shows K+1 loops; server-side, the
  AppTest rerun time.

Part 2 (``--part2``; ``--loops 200 --scale-loops 2000``), generated loops
(bench_contact's generator: 8-16 s, six drum patterns, half with bass and
chords) in /tmp/looplab-bench-dashboard-loops:

* **control to heatmap** with 200 loops (target < 1 s): the contact page's script
  rerun after a sharpening control moves (AppTest: engine re-sharpening +
  Fiedler order + both heatmaps + tables), the engine's re-sharpening alone, and
  in Chromium from the key press on the self_tune_k slider until the heatmap's
  data changed; baseline: re-running the DTW (what a page without the engine's
  cached distances would do on every move).
* **first render of the contact page with 2,000 loops** (scale mode: shortlist
  DTW, block-averaged heatmap): the one-off analysis and DTW (cold), then a
  fresh process opening the same library from the engine's disk cache, and the
  page script with the library in memory.

Baselines in the same run: each page's render with an *empty* workspace (the
frame's own cost), and for the slider, re-analysing the track from its audio
(what a dashboard without a cached analysis would do on every change).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "cache" / "numba"))

BENCH_WS = Path(tempfile.gettempdir()) / "looplab-bench-dashboard-ws"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"home": ("", "LoopLab"), "upload": ("upload", "Add tracks"),
         "loop_finder": ("loop_finder", "Loop finder"), "export": ("export", "Export")}
KEYS = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


#: Streamlit's own floor: a page with one slider and one heading (same browser, same machine).
TRIVIAL_APP = """
import streamlit as st
k = st.slider("How many loops (K)", 1, 20, 5, key="k")
st.subheader(f"Top {k} loops")
"""


def build_workspace(n: int, root: Path = BENCH_WS) -> Path:
    """``n`` analysed synthetic tracks in a workspace (analysed in parallel, then added)."""
    from joblib import Parallel, delayed

    from engine.config import AnalysisConfig
    from engine.library import Workspace
    from engine.pipeline import analyse_track
    from engine.synth import synth_track

    ws = Workspace(root)
    if ws.n_tracks() >= n:
        ws.loop_files()                          # previews as ingest prepares them (no-op when there)
        return root
    src = root.parent / "looplab-bench-dashboard-src"
    src.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        p = src / f"bench track {i:02d}.wav"
        if not p.exists():
            bpm = 90 + (i * 7) % 61
            key = f"{KEYS[i % 12]} {'minor' if i % 2 else 'major'}"
            synth_track(float(bpm), n_bars=16, key=key, seed=100 + i, sr=44100).write(p)
        paths.append(p)
    t0 = time.perf_counter()
    Parallel(n_jobs=2)(delayed(analyse_track)(p, AnalysisConfig(), cache=ws.cache) for p in paths)
    res = ws.ingest(paths)                      # content-hash keyed: the analyses are cache hits
    assert all(r.ok for r in res), [r.error for r in res if not r.ok]
    print(f"built a {n}-track workspace in {time.perf_counter() - t0:.0f} s -> {root}")
    return root


def apptest_times(root: Path, repeats: int = 3) -> dict:
    """Server-side script time per page (AppTest), median of ``repeats``."""
    from streamlit.testing.v1 import AppTest

    os.environ["LOOPLAB_WORKSPACE"] = str(root)
    out = {}
    for name in PAGES:
        times = []
        for _ in range(repeats):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
            t0 = time.perf_counter()
            if name != "home":
                at.switch_page(f"app_pages/{name}.py")
            at.run()
            times.append(time.perf_counter() - t0)
            assert not at.exception, at.exception
        out[name] = statistics.median(times)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("app_pages/loop_finder.py").run()
    times = []
    for k in (6, 7, 8, 5, 6, 7):
        t0 = time.perf_counter()
        at.slider(key="k").set_value(k).run()
        times.append(time.perf_counter() - t0)
        assert len(at.dataframe[0].value) == k
    out["k_slider"] = statistics.median(times)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run <app>`` on a free port with a given workspace."""

    def __init__(self, root: Path, app: Path = ROOT / "app.py"):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, LOOPLAB_WORKSPACE=str(root))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app), "--server.port",
             str(self.port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("streamlit did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)


def _render(page, url: str, title: str, full: bool = True) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    page.get_by_test_id("stMainBlockContainer").get_by_role(
        "heading", name=title, exact=True).wait_for()
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    if full and title == "Loop finder":
        page.locator("[data-testid='stDataFrame']").first.wait_for()
        page.locator(".js-plotly-plot").first.wait_for()
    return time.perf_counter() - t0


def slider_latency(page, url: str, moves=("ArrowRight",) * 2 + ("ArrowLeft",) * 2 + ("ArrowRight",) * 2 + ("ArrowLeft",) * 2):
    """Seconds from each key press on the K slider until the table heading shows the new K."""
    page.goto(url)
    page.get_by_text("Top 5 loops").wait_for()
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    thumb = page.get_by_role("slider", name="How many loops (K)")
    lat, k = [], 5
    for step in moves:
        k += 1 if step == "ArrowRight" else -1
        thumb.focus()
        t0 = time.perf_counter()
        page.keyboard.press(step)
        page.get_by_text(f"Top {k} loops").wait_for()
        lat.append(time.perf_counter() - t0)
        page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
    return lat


def trivial_latency() -> list:
    from playwright.sync_api import sync_playwright

    d = Path(tempfile.mkdtemp(prefix="looplab-bench-trivial-"))
    (d / "app.py").write_text(TRIVIAL_APP)
    server = Server(d, d / "app.py")
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            lat = slider_latency(page, server.url)
            b.close()
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)
    return lat


def browser_times(root: Path, repeats: int = 3) -> dict:
    from playwright.sync_api import sync_playwright

    server = Server(root)
    out = {}
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(server.url)                         # first connection of the server
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
            for name, (path, title) in PAGES.items():
                cold = _render(page, f"{server.url}/{path}", title)
                warm = statistics.median(_render(page, f"{server.url}/{path}", title)
                                         for _ in range(repeats))
                out[name] = (cold, warm)
            lat = slider_latency(page, f"{server.url}/loop_finder")
            out["k_slider"] = (max(lat), statistics.median(lat))
            b.close()
    finally:
        server.stop()
    return out


def reanalysis_time(root: Path) -> float:
    from engine.library import Workspace
    from engine.pipeline import analyse_track

    ws = Workspace(root)
    tid = ws.tracks()["track_id"].iloc[0]
    t0 = time.perf_counter()
    analyse_track(ws.audio_path(tid), ws.analysis_config(tid))     # no cache
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--part2", action="store_true", help="only the part-2 (contact map) figures")
    ap.add_argument("--loops", type=int, default=200)
    ap.add_argument("--scale-loops", type=int, default=2000)
    args = ap.parse_args()
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    if args.part2:
        part2(args.loops, args.scale_loops, not args.no_browser and Path(CHROMIUM).exists())
        return
    root = build_workspace(args.tracks)
    empty = Path(tempfile.mkdtemp(prefix="looplab-bench-empty-"))
    use_browser = not args.no_browser and Path(CHROMIUM).exists()
    try:
        print(f"\nworkspace: {args.tracks} tracks; machine: {os.cpu_count()} cores")
        srv_full = apptest_times(root)
        srv_empty = apptest_times_empty(empty)
        if use_browser:
            br_full = browser_times(root)
            br_empty = browser_times_empty(empty)
            floor = trivial_latency()
        base = reanalysis_time(root)
        print("\nfirst render per page (target < 2 s)")
        hdr = f"{'page':<12} {'browser cold':>13} {'browser warm':>13} {'empty ws':>9} " \
              f"{'ratio':>6} {'script (AppTest)':>17}"
        print(hdr)
        for name in PAGES:
            if use_browser:
                cold, warm = br_full[name]
                e = br_empty[name]
                print(f"{name:<12} {cold:>12.2f}s {warm:>12.2f}s {e:>8.2f}s {cold / e:>6.2f} "
                      f"{srv_full[name]:>16.3f}s")
            else:
                print(f"{name:<12} {'-':>13} {'-':>13} {srv_empty[name]:>8.3f}s "
                      f"{srv_full[name] / srv_empty[name]:>6.2f} {srv_full[name]:>16.3f}s")
        print("\nK slider -> updated table (target < 0.5 s)")
        if use_browser:
            worst, med = br_full["k_slider"]
            print(f"browser: median {med:.3f} s, worst {worst:.3f} s (8 key presses)")
            print(f"Streamlit's floor, a one-slider page in the same browser: median "
                  f"{statistics.median(floor):.3f} s (ratio {med / statistics.median(floor):.2f})")
        print(f"script rerun (AppTest): median {srv_full['k_slider']:.3f} s")
        print(f"baseline, re-analysing the track instead: {base:.2f} s "
              f"(cached re-rank is {base / srv_full['k_slider']:.0f}x faster)")
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def apptest_times_empty(root: Path) -> dict:
    """Page script times on an empty workspace (no K slider there)."""
    from streamlit.testing.v1 import AppTest

    os.environ["LOOPLAB_WORKSPACE"] = str(root)
    out = {}
    for name in PAGES:
        times = []
        for _ in range(3):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
            t0 = time.perf_counter()
            if name != "home":
                at.switch_page(f"app_pages/{name}.py")
            at.run()
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def browser_times_empty(root: Path) -> dict:
    from playwright.sync_api import sync_playwright

    server = Server(root)
    out = {}
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(server.url)
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']")
            for name, (path, title) in PAGES.items():
                out[name] = _render(page, f"{server.url}/{path}", title, full=False)
            b.close()
    finally:
        server.stop()
    return out


# --------------------------------------------------------------------------- part 2
LOOPS_DIR = Path(tempfile.gettempdir()) / "looplab-bench-dashboard-loops"
PART2_WS = Path(tempfile.gettempdir()) / "looplab-bench-dashboard-ws2"


def _contact_apptest(folder: Path, build: bool):
    from streamlit.testing.v1 import AppTest

    os.environ["LOOPLAB_WORKSPACE"] = str(PART2_WS)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=3600).run()
    at.switch_page("app_pages/contact_map.py").run()
    at.session_state["explore_source"] = "A folder on disk"
    at.session_state["explore_folder"] = str(folder)
    t0 = time.perf_counter()
    at.run()
    if build and any(b.key == "cm_build" for b in at.button):
        at.button(key="cm_build").click().run()
    secs = time.perf_counter() - t0
    assert not at.exception, at.exception
    return at, secs


def control_latency(folder: Path, n: int, use_browser: bool) -> None:
    from engine import explore
    from engine.contact import DTWParams, SharpenParams, pairwise_dtw
    from engine.contact.pairwise import DTW_COUNTERS

    print(f"\ncontrol -> heatmap, {n} loops (target < 1 s)")
    t0 = time.perf_counter()
    at, _ = _contact_apptest(folder, build=True)
    print(f"library build (analysis + DTW, engine disk cache may hold parts): "
          f"{time.perf_counter() - t0:.1f} s")
    from dashboard import library_state as ls

    lib = next(iter(ls._store().values()))
    dtw0 = dict(DTW_COUNTERS)
    reruns = []
    for k in (5, 9, 4, 12, 6, 8):
        t0 = time.perf_counter()
        at.slider(key="cm_k").set_value(k).run()
        reruns.append(time.perf_counter() - t0)
    for mode in ("sinkhorn", "none", "self_tuned_knn"):
        t0 = time.perf_counter()
        at.selectbox(key="cm_mode").set_value(mode).run()
        reruns.append(time.perf_counter() - t0)
    assert DTW_COUNTERS == dtw0, "a control move ran DTW"
    eng = []
    for k in (3, 5, 7, 9, 11, 13):
        t0 = time.perf_counter()
        explore.heatmap_view(explore.sharpen(lib, SharpenParams(self_tune_k=k)))
        eng.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    pairwise_dtw(lib.lset.seqset, DTWParams(), use_cache=False)
    dtw_s = time.perf_counter() - t0
    med = statistics.median(reruns)
    print(f"page script rerun after a control move (AppTest, 9 moves): median {med:.3f} s, "
          f"worst {max(reruns):.3f} s; DTW runs during the moves: 0")
    print(f"engine re-sharpen + heatmap view: median {statistics.median(eng) * 1000:.0f} ms")
    print(f"baseline, re-running the DTW instead: {dtw_s:.2f} s "
          f"({dtw_s / med:.0f}x the page rerun)")
    if use_browser:
        lat = browser_control_latency(folder)
        print(f"browser (Chromium), key press on self_tune_k -> heatmap data changed: "
              f"median {statistics.median(lat):.3f} s, worst {max(lat):.3f} s ({len(lat)} moves)")


def browser_control_latency(folder: Path) -> list:
    from playwright.sync_api import sync_playwright

    server = Server(PART2_WS)
    idle = "[data-testid='stApp'][data-test-script-state='notRunning']"
    out = []
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(1_800_000)
            _open_folder(page, server.url, folder, idle)
            page.get_by_role("button", name="Build the contact map", exact=False).click()
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2")
            page.wait_for_selector(idle)
            slider = page.get_by_test_id("stSlider").filter(has_text="self_tune_k") \
                .get_by_role("slider")
            js = "() => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[1].data[0].z)"
            for key in ("ArrowRight",) * 4 + ("ArrowLeft",) * 4:
                before = page.evaluate(js)
                slider.focus()
                t0 = time.perf_counter()
                slider.press(key)
                page.wait_for_function(
                    "(z) => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[1]"
                    ".data[0].z) !== z", arg=before)
                out.append(time.perf_counter() - t0)
                page.wait_for_selector(idle)
            b.close()
    finally:
        server.stop()
    return out


def scale_render(folder: Path, n: int) -> None:
    from engine import explore
    from engine.audio import find_audio_files

    print(f"\nfirst render of the contact page, {n} loops (scale mode)")
    files = [str(f) for f in find_audio_files(folder)]
    t0 = time.perf_counter()
    lib = explore.build_library(files, cache_dir=PART2_WS / "cache", n_jobs=2)
    print(f"one-off analysis + {lib.dtw.mode} DTW ({lib.dtw.n_pairs:,} pairs), 2 jobs: "
          f"{time.perf_counter() - t0:.1f} s (analysis {lib.seconds['analysis']:.1f} s, "
          f"DTW {lib.seconds['dtw']:.1f} s, aspects {lib.seconds['aspects']:.1f} s)")
    _, secs = _contact_apptest(folder, build=True)
    print(f"page opened on a server that has not seen these loops (engine disk cache warm): "
          f"{secs:.1f} s")
    times = []
    for _ in range(3):
        _, s2 = _contact_apptest(folder, build=False)
        times.append(s2)
    hv = explore.heatmap_view(explore.sharpen(lib))
    print(f"page script with the library in memory ({hv.values.shape[0]}x{hv.values.shape[0]} "
          f"block-averaged heatmap): median {statistics.median(times):.2f} s")
    if Path(CHROMIUM).exists():
        print(f"browser (Chromium) first render, library in memory: "
              f"{browser_first_render(folder):.2f} s")


def browser_first_render(folder: Path) -> float:
    """A fresh server: build the page once (disk cache), then time a new tab's first render."""
    from playwright.sync_api import sync_playwright

    server = Server(PART2_WS)
    idle = "[data-testid='stApp'][data-test-script-state='notRunning']"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(1_800_000)
            _open_folder(page, server.url, folder, idle)
            page.get_by_role("button", name="Build the contact map", exact=False).click()
            page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2")
            page.wait_for_selector(idle)
            page2 = b.new_page(viewport={"width": 1400, "height": 1000})
            page2.set_default_timeout(600_000)
            t0 = time.perf_counter()
            _open_folder(page2, server.url, folder, idle)
            page2.wait_for_function(
                "() => document.querySelectorAll('.js-plotly-plot').length >= 3")
            page2.wait_for_selector(idle)
            secs = time.perf_counter() - t0
            b.close()
    finally:
        server.stop()
    return secs


def _open_folder(page, url, folder, idle):
    page.goto(f"{url}/contact_map")
    page.wait_for_selector(idle)
    page.get_by_test_id("stMainBlockContainer").get_by_text("A folder on disk", exact=True).click()
    page.wait_for_timeout(300)
    page.wait_for_selector(idle)
    box = page.get_by_placeholder("/path/to/loops")
    box.fill(str(folder))
    box.press("Enter")
    page.wait_for_timeout(300)
    page.wait_for_selector(idle)


def _dump(files) -> str:
    import json

    p = Path(tempfile.gettempdir()) / "looplab-bench-dashboard-files.json"
    p.write_text(json.dumps(files))
    return str(p)


def part2(n: int, n_scale: int, use_browser: bool) -> None:
    """Part-2 figures (``n`` = 0 skips the 200-loop part, ``n_scale`` = 0 the scale part)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_contact import make_loops

    PART2_WS.mkdir(parents=True, exist_ok=True)
    rows = make_loops(LOOPS_DIR / "all", max(n, n_scale))
    small = LOOPS_DIR / f"first{n}"
    small.mkdir(parents=True, exist_ok=True)
    for r in rows[:n]:
        dst = small / Path(r["file"]).name
        if not dst.exists():
            os.symlink(r["file"], dst)
    print(f"machine: {os.cpu_count()} cores")
    if n:
        control_latency(small, n, use_browser)
    if n_scale:
        big = LOOPS_DIR / f"first{n_scale}"
        big.mkdir(parents=True, exist_ok=True)
        for r in rows[:n_scale]:
            dst = big / Path(r["file"]).name
            if not dst.exists():
                os.symlink(r["file"], dst)
        scale_render(big, n_scale)


if __name__ == "__main__":
    main()
