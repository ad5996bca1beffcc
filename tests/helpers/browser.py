"""A real headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, and the
polling wait that goes with it. The tests and the benchmarks both use this module."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psutil

T = TypeVar('T')

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
CHROMEDRIVER = shutil.which('chromedriver')

# CI sets JARVIS_STRICT_TESTS=1: there a missing tool fails the test instead of skipping it
STRICT = bool(os.environ.get('JARVIS_STRICT_TESTS'))



def __getattr__(name: str) -> Any:
    """``needs_chromium``, the tests' skip marker, built on first use: the benchmarks import this
    module too, and they run without pytest."""
    if name == 'needs_chromium':
        import pytest  # pylint: disable=import-outside-toplevel
        return pytest.mark.skipif(
            (CHROMIUM is None or CHROMEDRIVER is None) and not STRICT,
            reason='needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver; .ci/run does)')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def start_chromium(width: int = 1400, height: int = 1000) -> Any:  # -> selenium.webdriver.Chrome
    """One headless Chromium; chromedriver and its browser run in a process group of their own,
    so that ``quit_chromium`` can end all of it."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        raise RuntimeError('needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver)')
    from selenium import webdriver  # pylint: disable=import-outside-toplevel
    from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel

    profile = tempfile.mkdtemp(prefix='jarvis-chromium-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # without the background-networking switches Chromium tries to reach Google's services at start
    for argument in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                     '--disable-background-networking', '--disable-component-update', '--disable-sync',
                     '--disable-dev-shm-usage', f'--window-size={width},{height}', f'--user-data-dir={profile}'):
        options.add_argument(argument)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    service = Service(CHROMEDRIVER, popen_kw={'start_new_session': True})
    driver = webdriver.Chrome(service=service, options=options)
    driver._jarvis_profile = profile  # pylint: disable=protected-access
    return driver


def quit_chromium(driver: Any) -> None:
    """Quit the browser; kill chromedriver's process group and anything left of its tree."""
    process = getattr(getattr(driver, 'service', None), 'process', None)
    tree: list[psutil.Process] = []
    if process is not None:
        try:
            tree = psutil.Process(process.pid).children(recursive=True)
        except psutil.Error:
            tree = []
    try:
        driver.quit()
    except Exception:  # pylint: disable=broad-except  # already gone
        pass
    if process is not None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for child in tree:
        try:
            child.kill()
        except psutil.Error:
            pass
    shutil.rmtree(getattr(driver, '_jarvis_profile', ''), ignore_errors=True)


def wait_for(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.1, message: str = '') -> T:
    """Poll ``condition`` until it returns something true, and return that; TimeoutError otherwise."""
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
