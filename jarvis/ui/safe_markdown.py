"""Markdown for text that users, plugins and models write: nothing in it ever runs.

Three layers: markdown2 escapes raw HTML (so `<script>` shows as text), nh3 keeps only an
allow-list of tags, attributes and URL schemes (no `javascript:`), and NiceGUI's client side
passes the result through DOMPurify once more.
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
    # links open outside the app (in the native window: the system browser), never inside it
    return nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=URL_SCHEMES,
                     link_rel='noopener noreferrer nofollow', set_tag_attribute_values={'a': {'target': '_blank'}})


class SafeMarkdown(ui.markdown):
    def __init__(self, content: str = '') -> None:
        super().__init__(content, sanitize=render)
        self._props['sanitize'] = True  # and DOMPurify in the browser, too

    def _handle_content_change(self, content: str) -> None:
        html = render(content)  # our own conversion: it escapes raw HTML instead of passing it on
        if self._props.get('innerHTML') != html:
            self._props['innerHTML'] = html
