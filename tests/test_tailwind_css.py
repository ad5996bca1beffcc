"""The views' Tailwind classes come compiled ahead of time (assets/tailwind.css, build/tailwind.py) instead of
from NiceGUI's in-browser Tailwind: every class a view renders must be styled by a stylesheet the page has."""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import nicegui
from nicegui.testing.user import User

from jarvis.resources import asset

from .conftest import Harness
from .helpers.server import AppServer

ROOT = Path(__file__).resolve().parent.parent
NICEGUI_STATIC = Path(nicegui.__file__).parent / 'static'
VIEWS = ['/', '/chat', '/models', '/plugins', '/alerts']
# classes that only mark an element for the app's own scripts or styles nothing on purpose
HOOKS = re.compile(r'^(jarvis-|nicegui-)')


def class_selectors(css: str) -> set[str]:
    """The class names that a stylesheet's selectors name (escapes such as ``sm\\:grid-cols-2`` undone)."""
    css = re.sub(r'/\*.*?\*/', '', css, flags=re.S)
    names = set()
    for match in re.finditer(r'\.((?:\\.|[\w-])+)', css):
        names.add(re.sub(r'\\(.)', r'\1', match.group(1)))
    return names


def styled_classes() -> set[str]:
    sheets = [asset('tailwind.css'), asset('styles.css'), *NICEGUI_STATIC.glob('*.css')]
    return set().union(*(class_selectors(sheet.read_text(encoding='utf-8')) for sheet in sheets))


async def test_every_class_the_views_render_is_styled(jarvis: Harness, user: User) -> None:
    styled = styled_classes()
    unstyled: dict[str, set[str]] = {}
    for path in VIEWS:
        client = await user.open(path)
        for element in list(client.elements.values()):
            missing = {c for c in element.classes if c not in styled and not HOOKS.match(c)}
            if missing:
                unstyled.setdefault(path, set()).update(missing)
    assert not unstyled, (f'classes without a style: {unstyled}; a new Tailwind class needs '
                          f'`python build/tailwind.py` (assets/tailwind.css)')


def test_the_css_is_compiled_by_the_tailwind_that_nicegui_ships() -> None:
    """The same version as NiceGUI's in-browser Tailwind: the classes look as they would with it."""
    runtime = (NICEGUI_STATIC / 'tailwindcss.min.js').read_text(encoding='utf-8')[:200]
    shipped = re.search(r'"(\d+\.\d+\.\d+)"', runtime)
    compiled = re.search(r'tailwindcss v(\d+\.\d+\.\d+)', asset('tailwind.css').read_text(encoding='utf-8'))
    pinned = json.loads((ROOT / 'build' / 'tailwind' / 'package.json').read_text(encoding='utf-8'))
    assert shipped and compiled
    assert compiled.group(1) == shipped.group(1) == pinned['devDependencies']['@tailwindcss/cli']


def test_a_page_has_the_compiled_css_and_not_the_in_browser_tailwind(server: AppServer) -> None:
    page = httpx.get(server.url + '/', timeout=10).text
    assert 'tailwindcss.min.js' not in page
    assert 'text/tailwindcss' not in page
    assert '.grid-cols-1{' in page.replace(' ', '')  # a utility the System view uses, compiled into the page
