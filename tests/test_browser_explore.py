"""Part-2 pages in Debian's Chromium (Playwright), on generated demo loops.

Reuses test_browser.py's server (``streamlit run app.py`` on 127.0.0.1) and
browser fixtures. Screenshots go to tests/artifacts/explore_*.png.
"""
from __future__ import annotations

import re

import pytest

from test_browser import (_idle, _page, _shot, browser, expect, server,  # noqa: F401
                          track_file)

pytestmark = pytest.mark.browser


def _demo_loops(page, url, path):
    page.goto(f"{url}/{path}")
    _idle(page)
    # a deep link goes through the router: its sections are in the sidebar
    expect(page.get_by_test_id("stSidebarNav").get_by_text("Explore", exact=True)).to_be_visible()
    page.get_by_test_id("stMainBlockContainer").get_by_text("Demo loops", exact=True).click()
    _idle(page)
    page.get_by_role("button", name="Generate demo loops").click()
    _idle(page)


def _counters(page) -> dict:
    text = page.get_by_text(re.compile("DTW runs in this server")).inner_text()
    m = re.search(r"DTW runs in this server: (\d+) \(cache reads (\d+)\) · re-sharpenings: (\d+)",
                  text)
    assert m, text
    return {"dtw": int(m[1]), "cached": int(m[2]), "sharpen": int(m[3])}


def _heat_z(page, i):
    return page.evaluate(f"() => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[{i}]"
                         f".data[0].z)")


def test_contact_map_sharpening_without_dtw_rerun(server, browser):
    ctx, page = _page(browser)
    _demo_loops(page, server["url"], "contact_map")
    build = page.get_by_role("button", name=re.compile("Build the contact map"))
    if build.count():
        build.click()
    expect(page.get_by_text(re.compile("DTW runs in this server"))).to_be_visible()
    _idle(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3")
    before, z_before = _counters(page), _heat_z(page, 1)
    slider = page.get_by_test_id("stSlider").filter(has_text="self_tune_k").get_by_role("slider")
    slider.focus()
    for _ in range(3):
        slider.press("ArrowLeft")
    _idle(page)
    page.wait_for_function(
        "(z) => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[1].data[0].z) !== z",
        arg=z_before)
    after = _counters(page)
    assert after["dtw"] == before["dtw"] and after["cached"] == before["cached"]
    assert after["sharpen"] > before["sharpen"]
    # click a cell of the sharpened heatmap: the pair under it plays
    pair = page.get_by_text(re.compile(r"^Row .* × column "))
    pair_before = pair.inner_text()
    src_before = page.locator("audio").nth(1).get_attribute("src")
    box = page.locator(".js-plotly-plot").nth(1).locator(".nsewdrag").first.bounding_box()
    pairs, srcs = {pair_before}, {src_before}
    # two different cells: one of them may be the pair selected already
    for fx, fy in ((0.92, 0.08), (0.30, 0.70)):
        page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        _idle(page)
        pairs.add(pair.inner_text())
        srcs.add(page.locator("audio").nth(1).get_attribute("src"))
    assert len(pairs) >= 2, pairs
    assert len(srcs) >= 2, srcs
    _shot(page, "explore_contact_map")
    ctx.close()


def test_neighbours_query_and_play_one(server, browser):
    ctx, page = _page(browser)
    _demo_loops(page, server["url"], "neighbors")
    build = page.get_by_role("button", name=re.compile("Find neighbours among"))
    if build.count():
        build.click()
    expect(page.get_by_text("Listen", exact=True)).to_be_visible()
    _idle(page)
    page.wait_for_function("() => document.querySelectorAll('audio').length >= 9")
    nb = page.locator("audio").nth(1)                     # neighbour #1 (0 is the query)
    nb.evaluate("a => { a.muted = true; return a.play(); }")
    page.wait_for_function("() => document.querySelectorAll('audio')[1].currentTime > 0.2",
                           timeout=30_000)
    assert nb.evaluate("a => !a.paused && a.duration > 1")
    _shot(page, "explore_neighbors")
    ctx.close()


def test_click_a_map_point_plays_that_loop(server, browser):
    ctx, page = _page(browser)
    _demo_loops(page, server["url"], "library_map")
    build = page.get_by_role("button", name=re.compile("Map .* loops"))
    if build.count():
        build.click()
    expect(page.get_by_text("Click a point to play that loop.")).to_be_visible()
    _idle(page)
    points = page.locator(".js-plotly-plot .scatterlayer .point")
    expect(points.first).to_be_attached()
    points.nth(0).click(force=True)
    _idle(page)
    expect(page.locator("audio")).to_have_count(1)
    src1 = page.locator("audio").first.get_attribute("src")
    title1 = page.get_by_test_id("stMainBlockContainer").locator("h3").first.inner_text()
    points.nth(points.count() - 1).click(force=True)
    _idle(page)
    page.wait_for_function("(s) => document.querySelector('audio') && "
                           "document.querySelector('audio').getAttribute('src') !== s", arg=src1)
    title2 = page.get_by_test_id("stMainBlockContainer").locator("h3").first.inner_text()
    assert title2 != title1
    _shot(page, "explore_library_map")
    ctx.close()


def test_train_tags_and_see_the_f1_chart(server, browser):
    ctx, page = _page(browser)
    _demo_loops(page, server["url"], "tags")
    page.get_by_role("button", name="Train").click()
    expect(page.get_by_text("Held-out macro F1")).to_be_visible()
    _idle(page)
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible()
    names = page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => t.name)")
    assert "held-out F1" in names and "prevalence" in names
    assert page.locator(".js-plotly-plot .barlayer .point").count() >= 3
    _shot(page, "explore_tags")
    ctx.close()
