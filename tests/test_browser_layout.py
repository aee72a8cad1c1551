"""The page at a phone (390x844, touch) and a laptop (1280x800) viewport, in headless
Chromium (issue 12): after Read the answer is inside the viewport, the 280 px canvas is
fully visible, a finger's drawing is read, and every bad upload shows its message and no
traceback. One Streamlit server for the module; a tiny seeded model (no train.py run).
Screenshots: outputs/screenshots/layout-*.png.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_helpers import (
    NUMBER_CANVAS,
    load_mnist_sample,
    one_stroke,
    streamlit_server,
    ten_strokes,
    train_tiny_model,
    write_promoted_model,
)
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    QUIET_THREADS,
    SCREENSHOTS,
    TIMEOUT_MS,
    draw,
    expect,
    ink_in_column,
    model_answer,
    playwright_api,
    press_read,
    read_digit,
)
from tests.test_uploads_public import bad_uploads

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found"),
]
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True,
         "device_scale_factor": 2}
LAPTOP = {"viewport": {"width": 1280, "height": 800}}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model_dir = tmp_path_factory.mktemp("layout-model")
    write_promoted_model(model_dir, train_tiny_model(*load_mnist_sample()))
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with streamlit_server(model_dir, log, sys.executable, timeout=180,
                          extra_env=QUIET_THREADS) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, app_url: str, device: dict):
    page = browser.new_context(**device).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(app_url, timeout=TIMEOUT_MS)
    expect(page.locator("canvas.upper-canvas")).to_be_visible()
    return page


def inside_viewport(page, locator) -> None:
    box = locator.bounding_box()
    size = page.viewport_size
    assert box is not None
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"], (
        box, size)


def canvas_fully_shown(page) -> None:
    """The canvas's whole width is on screen and not clipped by its column."""
    canvas = page.locator("canvas.upper-canvas")
    clipped = canvas.evaluate("""el => {
        const r = el.getBoundingClientRect();
        let p = el.parentElement;
        while (p && p !== document.body) {
            const s = getComputedStyle(p), q = p.getBoundingClientRect();
            if (s.overflowX !== 'visible' && (r.left < q.left - 1 || r.right > q.right + 1))
                return [r.left, r.right, q.left, q.right, p.className];
            p = p.parentElement;
        }
        return null; }""")
    assert clipped is None, clipped
    inside_viewport(page, canvas)


def touch_stroke(page, canvas, points, width: float = 280) -> None:
    """One stroke with a finger (CDP touch events: Playwright has no touch move), in the
    coordinates of a canvas ``width`` px wide (shown scaled on a phone)."""
    box = canvas.bounding_box()
    scale = box["width"] / width
    cdp = page.context.new_cdp_session(page)
    def at(x, y):
        return [{"x": box["x"] + x * scale, "y": box["y"] + y * scale}]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": at(*points[0])})
    for x, y in points[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": at(x, y)})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def answer_panel_drawn(page) -> None:
    """The answer's chart and the model's 28x28 input have rendered (not placeholders)."""
    expect(page.get_by_test_id("stVegaLiteChart").locator("canvas, svg").first).to_be_visible()
    expect(page.get_by_text("What the model sees (28x28, enlarged)")).to_be_visible()


def ink_shown(page, x_fraction: float = 0.5) -> bool:
    """Whether the canvas shows ink at ``x_fraction`` of its width within a few seconds (a
    canvas that was just mounted loads its drawing a moment later)."""
    for _ in range(50):
        if ink_in_column(page, x_fraction):
            return True
        page.wait_for_timeout(200)
    return False


def no_traceback(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


def test_phone_touch_drawing_is_read_and_the_answer_is_in_view(browser, app_url: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page(browser, app_url, PHONE)
    canvas = page.locator("canvas.upper-canvas")
    canvas.scroll_into_view_if_needed()
    canvas_fully_shown(page)
    touch_stroke(page, canvas, one_stroke())
    page.screenshot(path=str(SCREENSHOTS / "layout-phone-drawn.png"))
    press_read(page, model_answer(page))
    expect(model_answer(page)).to_have_text(re.compile(r"^[0-9]$"))
    answer_panel_drawn(page)
    page.screenshot(path=str(SCREENSHOTS / "layout-phone-read.png"))
    inside_viewport(page, model_answer(page))
    no_traceback(page)
    # Undo is a real button: the stroke goes (the canvas sends its new, empty drawing),
    # and the page stops showing the old answer.
    page.locator(".st-key-undo_digit button:visible").click()
    expect(page.get_by_text("The drawing changed since it was read")).to_be_visible()
    expect(model_answer(page)).to_have_count(0)
    page.close()


def overlapping_ten() -> list[list[tuple[float, float]]]:
    """A "1" then a "0" whose left edge reaches over the "1": their boxes overlap, so the
    pixels alone show one blob; the strokes' order says two digits."""
    one, zero = ten_strokes()
    shift = 0.40 * NUMBER_CANVAS[0] + 45 - 0.58 * NUMBER_CANVAS[0]
    return [one, [(x + shift, y) for x, y in zero]]


def test_phone_number_canvas_fits_and_strokes_are_read(browser, app_url: str) -> None:
    """Number mode on a phone: the 700 px canvas is shown whole (scaled to the screen),
    a finger's strokes land where they are drawn, the digits whose boxes overlap are read
    apart by their strokes, the answer is in view and each digit is shown in its colour."""
    page = open_page(browser, app_url, PHONE)
    page.get_by_text("Number (several digits)", exact=True).click()
    expect(page.get_by_text("Write a number below")).to_be_visible()
    canvas = page.locator("canvas.upper-canvas")
    expect(canvas).to_have_count(1)  # the single-digit canvas is gone
    expect(page.locator(".st-key-number_canvas_box canvas.upper-canvas")).to_be_visible()
    canvas.scroll_into_view_if_needed()
    canvas_fully_shown(page)
    box = canvas.bounding_box()
    assert box["width"] < 400 and box["width"] > 2.5 * box["height"], box  # scaled, still wide
    for stroke in overlapping_ten():
        touch_stroke(page, canvas, stroke, width=NUMBER_CANVAS[0])
        page.wait_for_timeout(300)
    read_digit(page, "10", empty="Write a number first")
    inside_viewport(page, model_answer(page))
    expect(page.get_by_text("2 digits found: the strokes of each in its own colour")).to_be_visible()
    expect(page.locator(".character-tiles figure")).to_have_count(2)
    tiles = page.locator(".character-tiles").bounding_box()
    assert tiles["width"] <= page.viewport_size["width"], tiles
    no_traceback(page)
    page.screenshot(path=str(SCREENSHOTS / "layout-phone-number.png"), full_page=True)
    page.close()


def test_laptop_canvas_whole_and_answer_in_view(browser, app_url: str) -> None:
    page = open_page(browser, app_url, LAPTOP)
    canvas_fully_shown(page)
    draw(page, page.locator("canvas.upper-canvas"), one_stroke())
    press_read(page, model_answer(page))
    answer = model_answer(page).inner_text()
    answer_panel_drawn(page)
    page.screenshot(path=str(SCREENSHOTS / "layout-laptop-read.png"))
    inside_viewport(page, model_answer(page))
    no_traceback(page)
    # To the number mode and back: the drawing is on the canvas again, with its answer
    # (the page does not claim it changed), and Read reads it, not an empty canvas.
    page.get_by_text("Number (several digits)").click()
    expect(page.get_by_text("Write a number below")).to_be_visible()
    expect(model_answer(page)).to_have_count(0)
    page.get_by_text("Single digit").click()
    expect(model_answer(page)).to_have_text(answer)
    # The digit canvas is back and the number canvas gone (it lingers while the rerun runs).
    expect(page.locator('canvas.dc-canvas.lower-canvas[width="700"]')).to_have_count(0)
    expect(page.locator('canvas.dc-canvas.lower-canvas[width="280"]')).to_have_count(1)
    assert ink_shown(page), "the drawing did not come back after the mode switch"
    press_read(page, model_answer(page))
    expect(model_answer(page)).to_have_text(answer)
    expect(page.get_by_text("The drawing changed")).to_have_count(0)
    expect(page.get_by_text("Draw a digit first")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "layout-laptop-mode-switch.png"))
    # The app's Clear empties it.
    page.locator(".st-key-clear_digit button").click()
    expect(model_answer(page)).to_have_count(0)
    assert not ink_shown_after_clear(page), "Clear left the drawing on the canvas"
    no_traceback(page)
    page.close()


def ink_shown_after_clear(page) -> bool:
    """Whether ink stays in the canvas's middle column for a few seconds after Clear."""
    for _ in range(50):
        if not ink_in_column(page, 0.5):
            return False
        page.wait_for_timeout(200)
    return True


@pytest.mark.parametrize("device", ["laptop", "phone"])
def test_each_bad_upload_shows_its_message_and_no_traceback(
    browser, app_url: str, device: str, tmp_path: Path
) -> None:
    page = open_page(browser, app_url, LAPTOP if device == "laptop" else PHONE)
    page.get_by_text("Number (several digits)").click()
    # Wait for the number page before switching its input: a click on "Upload an image"
    # before the rerun lands hits the single-digit page's switch, which then goes away.
    expect(page.get_by_text("Write a number below")).to_be_visible()
    page.get_by_text("Upload an image").click()
    chooser = page.locator("input[type=file]")
    expect(page.get_by_text("A picture of one line of digits")).to_be_visible()
    cases = bad_uploads() if device == "laptop" else {  # two on the phone: time is short
        k: v for k, v in bad_uploads().items() if k in ("text-as-png", "huge")}
    for case, (name, data, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        chooser.set_input_files(str(path))
        message = page.get_by_test_id("stAlertContentError").filter(has_text=expected)
        expect(message).to_be_visible()
        expect(page.get_by_test_id("stAlertContentError")).to_have_count(1)
        no_traceback(page)
        expect(page.get_by_test_id("stImage")).to_have_count(0)
        page.screenshot(path=str(SCREENSHOTS / f"layout-{device}-upload-{case}.png"))
    page.close()
