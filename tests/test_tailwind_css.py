"""The views' Tailwind classes come compiled ahead of time (assets/tailwind.css, build/tailwind.py) instead of
from NiceGUI's in-browser Tailwind: every class a view renders must be styled by a stylesheet the page has."""
from __future__ import annotations

import ast
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


# the style sheets NiceGUI's page links without its in-browser Tailwind (not headwind.css: it comes with it)
PAGE_SHEETS = ('fonts.css', 'quasar.unimportant.prod.css', 'quasar.important.prod.css', 'nicegui.css')


def styled_classes() -> set[str]:
    sheets = [asset('tailwind.css'), asset('styles.css'), *(NICEGUI_STATIC / name for name in PAGE_SHEETS)]
    return set().union(*(class_selectors(sheet.read_text(encoding='utf-8')) for sheet in sheets))


def source_classes() -> dict[str, set[str]]:
    """Every class the app's sources name, also those of a dialog, a menu or a state no test opens: the
    strings in each ``.classes(...)`` call and in each ``class=`` or ``...-class=`` of a ``.props(...)``, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / 'jarvis').rglob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ('classes', 'props')):
                continue
            texts = [n.value for arg in [*node.args, *(k.value for k in node.keywords)] for n in ast.walk(arg)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            if node.func.attr == 'props':
                texts = [m.group(1) or m.group(2) for text in texts
                         for m in re.finditer(r'(?:^|\s)(?:[\w-]+-)?class=(?:"([^"]*)"|(\S+))', text)]
            found.setdefault(str(path.relative_to(ROOT)), set()).update(c for text in texts for c in text.split())
    return found


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


def test_every_class_in_the_sources_is_styled() -> None:
    styled = styled_classes()
    unstyled = {path: missing for path, names in source_classes().items()
                if (missing := {c for c in names if c not in styled and not HOOKS.match(c)})}
    assert not unstyled, (f'classes without a style: {unstyled}; a new Tailwind class needs '
                          f'`python build/tailwind.py` (assets/tailwind.css)')


def test_the_sources_are_read() -> None:
    """The scan above finds what it is meant to: a class of a dialog and one of a props' active-class."""
    classes = set().union(*source_classes().values())
    assert {'w-[32rem]', 'min-w-96', 'bg-sky-500/20', 'grid-cols-1'} <= classes


def test_no_rotate_class_turns_quasars_arrows_twice() -> None:
    """Quasar turns an open select's arrow with its own ``rotate-180``; NiceGUI's headwind.css, which undoes
    Tailwind's rotate classes, comes only with its in-browser Tailwind."""
    assert not {c for c in class_selectors(asset('tailwind.css').read_text(encoding='utf-8')) if c.startswith('rotate-')}


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
