"""Markdown for text that users, plugins and models write: nothing in it ever runs.

Two layers on the server, so the browser only ever receives allow-listed HTML: markdown2 escapes
raw HTML (so `<script>` shows as text), and nh3 (Rust's ammonia) keeps only an allow-list of tags,
attributes and URL schemes (no `javascript:`, no images, no event handlers). The browser's own
sanitiser is not used on top: it strips the ``target`` that makes links open outside the app.
"""
from __future__ import annotations

import markdown2
import nh3
from nicegui import ui

EXTRAS = ['fenced-code-blocks', 'tables', 'strike', 'cuddled-lists', 'code-friendly', 'break-on-newline']
TAGS = set(nh3.ALLOWED_TAGS) | {'span', 'div', 'pre', 'code', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
                                'del', 's', 'hr', 'br', 'p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6'}
TAGS -= {'img'}  # no remote images: a model's output must not make the app fetch anything
ATTRIBUTES = {'*': {'class'}, 'a': {'href', 'title'}, 'th': {'align'}, 'td': {'align'}, 'code': {'class'}}
URL_SCHEMES = {'http', 'https', 'mailto'}


def render(text: str) -> str:
    html = markdown2.markdown(text, safe_mode='escape', extras=EXTRAS)
    # links open outside the app (a new tab; in the native window, pywebview hands them to the system browser)
    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES,
                     link_rel='noopener noreferrer nofollow', set_tag_attribute_values={'a': {'target': '_blank'}})


class SafeMarkdown(ui.html):
    """``content`` is the Markdown source; the element shows ``render(content)``."""

    def __init__(self, content: str = '') -> None:
        super().__init__(content, sanitize=render)
