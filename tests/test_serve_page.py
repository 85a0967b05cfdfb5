"""The drawing page in a real browser (headless Chromium), against a server of a model trained on MNIST."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.browser import (
    DRAWN_DIGITS,
    LETTER_H,
    LETTER_W,
    SCRIBBLE,
    SEVEN,
    SMALL_SEVEN,
    ZERO,
    bars,
    chromium,
    chromium_installed,
    draw,
    guess,
    preview,
    preview_rgb,
)
from helpers.checkpoints import save_checkpoint
from helpers.server_process import running_server
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from mnist_lit.data.datamodule import load_builtin
from mnist_lit.data.sets import DATASETS, DataSet
from mnist_lit.models.classifier import ImageClassifier
from mnist_lit.models.predictor import load_predictor

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_installed(), reason="needs Debian's chromium and chromium-driver (apt-get install)"),
]


@pytest.fixture(scope="module")
def trained(trained_run) -> Path:
    """The session's one-epoch MNIST model."""
    return trained_run.last


@contextmanager
def page_of(checkpoint: Path) -> Iterator:
    """Headless Chromium on the page of a server of ``checkpoint``."""
    with running_server(checkpoint) as url:
        driver = chromium()
        try:
            driver.get(url)
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def page(trained):
    with page_of(trained) as driver:
        yield driver


def wait_for(driver, condition, timeout: float = 30):
    return WebDriverWait(driver, timeout).until(lambda d: condition())


def top_bar(driver) -> int | None:
    rows = driver.find_elements(By.CSS_SELECTOR, "#bars li")
    tops = [i for i, row in enumerate(rows) if "top" in row.get_attribute("class").split()]
    return tops[0] if len(tops) == 1 else None


def assert_empty(driver) -> None:
    assert guess(driver) == ("empty", "draw a digit")
    assert bars(driver) == [0.0] * 10 and top_bar(driver) is None


def test_drawn_digits_are_guessed_with_their_bar_highest_and_clear_empties_the_page(page):
    wait_for(page, lambda: len(bars(page)) == 10 and guess(page)[0] == "empty")
    assert_empty(page)

    draw(page, SEVEN, pointer="mouse")
    wait_for(page, lambda: guess(page) == ("guess", "7"))
    assert top_bar(page) == 7 and bars(page)[7] == max(bars(page)) > 0.5
    assert max(preview(page)) == 255  # the 28x28 input is shown

    page.find_element(By.ID, "clear").click()
    wait_for(page, lambda: guess(page)[0] == "empty")
    assert_empty(page)

    draw(page, ZERO, pointer="touch")
    wait_for(page, lambda: guess(page) == ("guess", "0"))
    assert top_bar(page) == 0 and bars(page)[0] == max(bars(page))

    page.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)  # the keyboard's Clear
    wait_for(page, lambda: guess(page)[0] == "empty")
    assert_empty(page)


def test_a_small_digit_in_a_corner_is_read_as_mnist_would_show_it(page):
    page.find_element(By.ID, "clear").click()
    draw(page, SMALL_SEVEN)
    wait_for(page, lambda: guess(page) == ("guess", "7"))
    lit = [i for i, value in enumerate(preview(page)) if value > 0]
    rows, cols = {i // 28 for i in lit}, {i % 28 for i in lit}
    assert max(rows) - min(rows) + 1 == 20 and 13 <= (min(cols) + max(cols)) / 2 <= 15  # 20 pixels tall, centred


def test_an_uploaded_picture_file_is_guessed(page, trained, real_mnist, tmp_path):
    # A real test digit the model reads right, enlarged and printed dark on white like a scan.
    images, labels = load_builtin(DATASETS["mnist"], real_mnist, train=False)
    predictor = load_predictor(trained)
    for index in range(len(labels)):
        path = tmp_path / f"scan{index}.png"
        Image.fromarray(255 - images[index, 0].numpy()).resize((140, 140)).save(path)
        label = int(labels[index])
        if label not in (0, 7) and int(predictor.logits(predictor.load_picture(path)[None]).argmax()) == label:
            break

    page.find_element(By.ID, "upload").send_keys(str(path))
    wait_for(page, lambda: guess(page) == ("guess", str(label)))
    assert top_bar(page) == label
    assert path.name in page.find_element(By.ID, "status").text


def test_the_controls_are_reached_with_the_keyboard(page):
    page.find_element(By.TAG_NAME, "h1").click()
    reached = []
    for _ in range(6):
        ActionChains(page).send_keys(Keys.TAB).perform()
        reached.append(page.switch_to.active_element.get_attribute("id"))
    assert "clear" in reached and "upload" in reached

    draw(page, SEVEN)
    wait_for(page, lambda: guess(page) == ("guess", "7"))
    page.find_element(By.ID, "clear").send_keys(Keys.ENTER)  # a focused button works from the keyboard
    wait_for(page, lambda: guess(page)[0] == "empty")


def test_a_phone_sized_window_shows_everything_without_scrolling_sideways(page):
    page.set_window_size(390, 844)
    try:
        page.find_element(By.ID, "clear").click()
        overflow = page.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        draw(page, SEVEN, pointer="touch")
        wait_for(page, lambda: guess(page) == ("guess", "7"))
    finally:
        page.set_window_size(900, 1000)


def test_a_server_with_a_key_is_asked_for_it_once_and_then_answers(trained, monkeypatch):
    monkeypatch.setenv("MNIST_LIT_PAGE_KEY", "page key")
    with running_server(trained, "--api_key_env", "MNIST_LIT_PAGE_KEY") as url:
        driver = chromium()
        try:
            driver.get(url)
            prompt = WebDriverWait(driver, 30).until(expected_conditions.alert_is_present())
            assert "key" in prompt.text
            prompt.send_keys("page key")
            prompt.accept()
            wait_for(driver, lambda: len(bars(driver)) == 10 and guess(driver)[0] == "empty")
            for digit, strokes in ((7, SEVEN), (0, ZERO)):  # the second picture is sent without asking again
                driver.find_element(By.ID, "clear").click()
                draw(driver, strokes, pointer="mouse")
                wait_for(driver, lambda: guess(driver) == ("guess", str(digit)))
            assert driver.execute_script("return sessionStorage.getItem('mnist-lit-api-key')") == "page key"
        finally:
            driver.quit()


def test_a_scribble_and_a_letter_are_said_not_to_be_digits_with_greyed_bars(page):
    results = page.find_element(By.ID, "results")
    for strokes in (SCRIBBLE, LETTER_W):
        page.find_element(By.ID, "clear").click()
        wait_for(page, lambda: guess(page)[0] == "empty")
        draw(page, strokes)
        wait_for(page, lambda: guess(page)[0] not in ("empty", "busy"))
        kind, said = guess(page)
        assert kind == "unknown" and re.fullmatch(r"doesn't look like a digit \(closest: \d\)", said), said
        assert "rejected" in results.get_attribute("class").split()
        assert float(page.execute_script("return getComputedStyle(document.getElementById('bars')).opacity")) < 1
        assert sum(bars(page)) == pytest.approx(1, abs=0.01)  # the numbers are still shown, greyed
        assert page.find_element(By.ID, "confidence").text == ""
    # A digit after them is answered as one again, in full colour.
    page.find_element(By.ID, "clear").click()
    wait_for(page, lambda: guess(page)[0] == "empty")
    assert "rejected" not in results.get_attribute("class").split()
    draw(page, SEVEN)
    wait_for(page, lambda: guess(page) == ("guess", "7"))
    assert "rejected" not in results.get_attribute("class").split() and page.find_element(By.ID, "confidence").text.endswith("% sure")


@pytest.mark.parametrize("drawn", list(DRAWN_DIGITS))
def test_digits_drawn_big_slanted_quick_slow_or_in_a_corner_are_answered_as_digits(page, drawn):
    strokes, digit = DRAWN_DIGITS[drawn]
    page.find_element(By.ID, "clear").click()
    wait_for(page, lambda: guess(page)[0] == "empty")
    draw(page, strokes, duration=5 if "quick" in drawn else 15)
    wait_for(page, lambda: guess(page)[0] not in ("empty", "busy"))
    assert guess(page) == ("guess", digit), drawn
    assert top_bar(page) == int(digit)


def test_a_drawn_letter_h_is_said_not_to_be_a_digit(page):
    page.find_element(By.ID, "clear").click()
    wait_for(page, lambda: guess(page)[0] == "empty")
    draw(page, LETTER_H)
    wait_for(page, lambda: guess(page)[0] not in ("empty", "busy"))
    assert guess(page)[0] == "unknown", guess(page)


@pytest.fixture(scope="module")
def photos_page(tmp_path_factory):
    """The page of a server of an (untrained) model of a colour folder set: 40x40 RGB pictures of three shapes."""
    shapes = DataSet("shapes", ("circle", "square", "triangle"), (0.5,) * 3, (0.25,) * 3, channels=3, size=40,
                     pictures="photos", polarity="photos", path="/pictures/shapes")
    model = ImageClassifier(hidden_units=16, dataset_info=shapes.record())
    with page_of(save_checkpoint(tmp_path_factory.mktemp("photos") / "shapes.ckpt", model)) as driver:
        yield driver


def test_for_photos_the_canvas_gives_way_to_an_upload_zone_and_a_colour_preview(photos_page, tmp_path):
    page = photos_page
    wait_for(page, lambda: len(bars(page)) == 3 and guess(page) == ("empty", "upload or drop a picture"))
    assert not page.find_element(By.ID, "pad").is_displayed() and not page.find_element(By.ID, "clear").is_displayed()
    assert page.find_element(By.ID, "drop").is_displayed()
    assert page.find_element(By.ID, "upload").get_attribute("accept") == "image/*"  # phones offer the camera
    assert page.find_element(By.TAG_NAME, "figcaption").text == "what the model sees (40x40)"

    picture = Image.new("RGB", (120, 80), "white")  # a red square on white, wider than tall
    picture.paste((220, 20, 20), (40, 20, 80, 60))
    picture.save(tmp_path / "square.png")
    page.find_element(By.ID, "upload").send_keys(str(tmp_path / "square.png"))
    # An untrained model without a calibration: a class, or unsure between two ("circle or square?").
    wait_for(page, lambda: guess(page)[0] in ("guess", "unsure"))
    assert set(guess(page)[1].rstrip("?").split(" or ")) <= {"circle", "square", "triangle"} and top_bar(page) is not None
    side, pixels = preview_rgb(page)
    red, green, blue = pixels[20 * side + 20]  # the middle: the square, in its own colour
    assert side == 40 and red > 180 and green < 60 and blue < 60
    assert min(pixels[0]) > 220  # a corner: the white border the picture was padded with
