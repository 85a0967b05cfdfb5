"""The README's picture of the drawing page: a server of a checkpoint, a 7 drawn in headless Chromium.

    python benchmarks/serve_screenshot.py --ckpt_path checkpoints/version_0/last.ckpt

Needs Debian's chromium and chromium-driver (as the page test does). Writes benchmarks/serve_page.png.
"""

import argparse
import sys
from pathlib import Path

from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the server and browser helpers the tests use

from helpers.browser import SEVEN, bars, chromium, draw, guess  # noqa: E402
from helpers.server_process import running_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "serve_page.png")
    args = parser.parse_args()

    with running_server(args.ckpt_path) as url:
        driver = chromium(width=760, height=700)
        try:
            driver.get(url)
            WebDriverWait(driver, 30).until(lambda d: bars(d) and guess(d)[0] == "empty")
            draw(driver, SEVEN)
            WebDriverWait(driver, 30).until(lambda d: guess(d)[0] == "guess")
            driver.save_screenshot(str(args.output))
        finally:
            driver.quit()
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
