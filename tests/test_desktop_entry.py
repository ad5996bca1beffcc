"""The XDG desktop entry, its icon and the autostart entry, written under a temporary XDG_DATA_HOME and
XDG_CONFIG_HOME by the real command, and checked with desktop-file-validate where it is installed."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jarvis.desktop_entry import exec_line

from .helpers.browser import STRICT

VALIDATOR = shutil.which('desktop-file-validate')
pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='XDG desktop entries are for Linux')


def jarvis(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'XDG_DATA_HOME': str(tmp_path / 'data'), 'XDG_CONFIG_HOME': str(tmp_path / 'config')}
    return subprocess.run([sys.executable, '-m', 'jarvis', *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def read_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding='utf-8')
    return dict(parser['Desktop Entry'])


def validate(path: Path) -> None:
    if VALIDATOR is None:
        if STRICT:
            pytest.fail('needs desktop-file-validate (Debian: apt-get install desktop-file-utils; .ci/run does)')
        return
    result = subprocess.run([VALIDATOR, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_install_and_uninstall_the_desktop_entry(tmp_path: Path) -> None:
    entry = tmp_path / 'data' / 'applications' / 'jarvis-desktop.desktop'
    icon = tmp_path / 'data' / 'icons' / 'hicolor' / '256x256' / 'apps' / 'jarvis-desktop.png'
    result = jarvis(tmp_path, '--install-desktop-entry')
    assert result.returncode == 0, result.stderr
    assert entry.is_file() and icon.is_file() and icon.read_bytes()[:4] == b'\x89PNG'
    fields = read_entry(entry)
    assert fields['Name'] == 'J.A.R.V.I.S.' and fields['Icon'] == 'jarvis-desktop' and fields['Type'] == 'Application'
    started = subprocess.run([*fields['Exec'].split(' '), '--version'], capture_output=True, text=True, timeout=60,
                             check=False)
    assert started.returncode == 0 and 'J.A.R.V.I.S. Desktop' in started.stdout, 'Exec starts this installation'
    validate(entry)
    assert not (tmp_path / 'config' / 'autostart').exists(), 'starting with the session is off by default'

    result = jarvis(tmp_path, '--uninstall-desktop-entry')
    assert result.returncode == 0, result.stderr
    assert not entry.exists() and not icon.exists()


def test_autostart_on_and_off(tmp_path: Path) -> None:
    autostart = tmp_path / 'config' / 'autostart' / 'jarvis-desktop.desktop'
    assert jarvis(tmp_path, '--autostart', 'on').returncode == 0
    fields = read_entry(autostart)
    assert fields['X-GNOME-Autostart-enabled'] == 'true' and fields['Exec']
    validate(autostart)
    assert jarvis(tmp_path, '--autostart', 'off').returncode == 0
    assert not autostart.exists()
    jarvis(tmp_path, '--autostart', 'on')
    jarvis(tmp_path, '--uninstall-desktop-entry')
    assert not autostart.exists(), 'uninstalling removes the autostart entry too'


def test_exec_quotes_what_the_spec_reserves() -> None:
    assert exec_line(['/opt/my apps/jarvis', '-m', 'jarvis']) == '"/opt/my apps/jarvis" -m jarvis'
    assert exec_line(['/a/100%/python']) == '/a/100%%/python'
    assert exec_line(['/a/$x"y']) == '"/a/\\$x\\"y"'
