"""A real headless Chromium (Debian's chromium and chromium-driver) driven by Selenium."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar('T')

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
CHROMEDRIVER = shutil.which('chromedriver')

# CI sets JARVIS_STRICT_TESTS=1: there a missing tool fails the test instead of skipping it
STRICT = bool(os.environ.get('JARVIS_STRICT_TESTS'))

needs_chromium = pytest.mark.skipif(
    (CHROMIUM is None or CHROMEDRIVER is None) and not STRICT,
    reason='needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver; .ci/run does)')


def start_chromium(width: int = 1400, height: int = 1000):  # -> selenium.webdriver.Chrome
    from selenium import webdriver  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for argument in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                     '--disable-background-networking', '--disable-component-update', '--disable-sync',
                     '--disable-dev-shm-usage', f'--window-size={width},{height}',
                     f'--user-data-dir={tempfile.mkdtemp(prefix="jarvis-chromium-")}'):
        options.add_argument(argument)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.1, message: str = '') -> T:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except Exception as error:  # the element may not exist yet
            last_error = error
        time.sleep(interval)
    raise TimeoutError(message or f'condition not met within {timeout} s (last error: {last_error})')
