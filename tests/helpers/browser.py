"""Headless Chromium driven through Selenium, and the strokes of digits drawn on the page; shared by the
page test and the screenshot script. Debian's packages: `apt-get install chromium chromium-driver`."""

import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.actions import interaction
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.actions.pointer_input import PointerInput
from selenium.webdriver.common.by import By

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAD = 280  # the drawing canvas's own pixels; strokes below are in them

# Polylines as a hand draws them: a 7 with a bar and a slanted stem, a 0 as one closed loop.
SEVEN = [[(70, 60), (130, 58), (210, 60), (180, 120), (150, 180), (125, 235)]]
ZERO = [[(140, 45), (95, 65), (75, 140), (95, 215), (140, 235), (185, 215), (205, 140), (185, 65), (140, 45), (120, 55)]]
# A 7 drawn small in a corner, as people do: it reaches the network scaled and centred like MNIST's.
SMALL_SEVEN = [[(25, 25), (75, 24), (120, 26), (95, 80), (70, 140)]]
# Drawings of no digit: a tangled scribble, and a W (a letter no digit looks like).
SCRIBBLE = [[(60, 80), (220, 60), (70, 200), (200, 230), (120, 50), (150, 240), (230, 140), (50, 130)]]
LETTER_W = [[(40, 70), (85, 220), (140, 110), (195, 220), (240, 70)]]
LETTER_H = [[(70, 50), (72, 235)], [(210, 45), (205, 235)], [(72, 140), (207, 138)]]


def slowly(strokes: list[list[tuple[int, int]]], steps: int = 8) -> list[list[tuple[int, int]]]:
    """The same strokes through many close points, as a hand moving slowly sends them."""
    return [
        [(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps))
         for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]) for i in range(steps)] + [stroke[-1]]
        for stroke in strokes
    ]


# Digits as people draw them other than the examples above: each must be answered as the digit.
DRAWN_DIGITS = {
    "a 2 filling the canvas": ([[(20, 60), (80, 10), (200, 8), (265, 70), (230, 140), (20, 270), (272, 272)]], "2"),
    "a slanted 1": ([[(150, 60), (178, 32), (118, 250)]], "1"),
    "a 3 in one quick scrawl": ([[(60, 50), (210, 60), (130, 130), (220, 190), (90, 250)]], "3"),
    "a 5 drawn slowly": (slowly([[(200, 40), (90, 40), (80, 130), (180, 120), (210, 190), (150, 245), (70, 225)]]), "5"),
    "a 4 small in a corner": ([[(240, 170), (190, 240), (265, 240)], [(250, 200), (248, 275)]], "4"),
}


def chromium_installed() -> bool:
    return shutil.which(CHROMIUM) is not None and shutil.which(CHROMEDRIVER) is not None


def chromium(width: int = 900, height: int = 1000) -> webdriver.Chrome:
    """Debian's Chromium, headless, through Debian's chromedriver (given by path: Selenium downloads nothing)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def draw(driver: webdriver.Chrome, strokes: list[list[tuple[int, int]]], pointer: str = "mouse", duration: int = 15) -> None:
    """Draw ``strokes`` on the page's canvas with pointer events from a mouse or a finger ("touch"),
    each move taking ``duration`` ms."""
    pad = driver.find_element("id", "pad")
    scale = pad.size["width"] / PAD  # the canvas may be shown smaller than its own pixels (a phone)
    kind = interaction.POINTER_TOUCH if pointer == "touch" else interaction.POINTER_MOUSE
    actions = ActionBuilder(driver, mouse=PointerInput(kind, pointer), duration=duration)
    for stroke in strokes:
        # Offsets are from the canvas's centre.
        points = [((x - PAD / 2) * scale, (y - PAD / 2) * scale) for x, y in stroke]
        actions.pointer_action.move_to(pad, *points[0]).pointer_down()
        for point in points[1:]:
            actions.pointer_action.move_to(pad, *point)
        actions.pointer_action.pointer_up()
    actions.perform()


def guess(driver: webdriver.Chrome) -> tuple[str, str]:
    """The state and text of the guess, once no answer that could change it is awaited."""
    element = driver.find_element(By.ID, "guess")
    if driver.find_element(By.ID, "results").get_attribute("aria-busy") != "false":
        return "busy", ""
    return element.get_attribute("data-state"), element.text


def bars(driver: webdriver.Chrome) -> list[float]:
    """The probability each class's bar shows, in the order of the classes."""
    rows = driver.find_elements(By.CSS_SELECTOR, "#bars li")
    return [float(row.get_attribute("data-p") or 0) for row in rows]


def preview(driver: webdriver.Chrome) -> list[int]:
    """The 28x28 preview's grey values, row by row."""
    rgba = driver.execute_script(
        "return Array.from(document.getElementById('preview').getContext('2d').getImageData(0, 0, 28, 28).data)"
    )
    return rgba[0::4]


def preview_rgb(driver: webdriver.Chrome) -> tuple[int, list[tuple[int, int, int]]]:
    """The preview's side and its (red, green, blue) values, row by row, whatever its size."""
    side, rgba = driver.execute_script(
        "const canvas = document.getElementById('preview');"
        "return [canvas.width, Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)]"
    )
    return side, list(zip(rgba[0::4], rgba[1::4], rgba[2::4]))
