"""A local stand-in for Wikipedia's REST API, so that tests never reach the internet.

A real HTTP server on 127.0.0.1 (a background thread) that answers, per language:

* ``GET /{lang}/api/rest_v1/page/summary/{title}``: the page summary JSON, a 302 for a redirect
  title, or 404 in the REST API's error shape;
* ``GET /{lang}/w/rest.php/v1/search/page?q=...&limit=...``: ``{"pages": [...]}``.

Use it as a context manager; point ``Settings.wikipedia_url`` at ``url_template``.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit


@dataclass(frozen=True)
class Article:
    title: str
    description: str
    extract: str
    aliases: tuple[str, ...] = ()  # extra words the search finds it by

    @property
    def key(self) -> str:
        return self.title.replace(' ', '_')


# Short texts written for these tests (not copied from Wikipedia); the German ones contain dates
# and abbreviations ("10. Dezember", "z. B.") that must not end a sentence.
ARTICLES: dict[str, list[Article]] = {
    'en': [
        Article('Ada Lovelace', 'English mathematician (1815–1852)',
                'Ada Lovelace was an English mathematician and writer. She is known for her notes on '
                "Charles Babbage's proposed Analytical Engine. Her notes contain what is often called the first "
                'published computer program. She was born in London in 1815. She died in 1852.',
                ('Lovelace', 'Augusta Ada King')),
        Article('Alan Turing', 'English computer scientist (1912–1954)',
                'Alan Turing was an English mathematician and computer scientist. He formalised the concepts of '
                'algorithm and computation with the Turing machine. During the Second World War he worked on '
                'breaking German ciphers at Bletchley Park. He is widely regarded as a founder of theoretical '
                'computer science.',
                ('Turing',)),
        Article('Photosynthesis', 'Biological process that converts light into chemical energy',
                'Photosynthesis is the process by which plants, algae and some bacteria turn light energy into '
                'chemical energy. It takes in carbon dioxide and water and releases oxygen. The energy is stored '
                'in sugars. Almost all life on Earth depends on it.'),
        Article('Albert Einstein', 'German-born theoretical physicist (1879–1955)',
                'Albert Einstein was a German-born theoretical physicist. He developed the theory of relativity. '
                'He received the Nobel Prize in Physics in 1921. He died in Princeton in 1955.',
                ('Einstein',)),
    ],
    'de': [
        Article('Ada Lovelace', 'britische Mathematikerin',
                'Ada Lovelace (* 10. Dezember 1815 in London; † 27. November 1852 ebenda) war eine britische '
                'Mathematikerin. Sie beschrieb u. a. ein Programm für die Analytical Engine von Charles Babbage. '
                'Dieses gilt z. B. vielen als das erste Computerprogramm. Eine Programmiersprache trägt ihren Namen.',
                ('Lovelace',)),
        Article('Alan Turing', 'britischer Mathematiker und Informatiker',
                'Alan Turing war ein britischer Mathematiker, Logiker und Informatiker. Er gilt als einer der '
                'einflussreichsten Theoretiker der frühen Informatik. Im Zweiten Weltkrieg half er, die Enigma zu '
                'entschlüsseln. Nach ihm ist der Turing Award benannt.',
                ('Turing',)),
        Article('Photosynthese', 'biochemischer Vorgang in Pflanzen',
                'Die Photosynthese ist ein Vorgang, bei dem Pflanzen Lichtenergie in chemische Energie umwandeln. '
                'Dabei entstehen aus Kohlendioxid und Wasser Zucker und Sauerstoff. Sie findet in den '
                'Chloroplasten statt. Fast alles Leben auf der Erde hängt von ihr ab.',
                ('Fotosynthese',)),
        Article('Albert Einstein', 'theoretischer Physiker',
                'Albert Einstein war ein theoretischer Physiker. Er entwickelte die Relativitätstheorie. '
                '1921 erhielt er den Nobelpreis für Physik. Er starb 1955 in Princeton.',
                ('Einstein',)),
    ],
}
# Titles that MediaWiki redirects to an article (the summary endpoint answers 302).
REDIRECTS: dict[str, dict[str, str]] = {
    'en': {'Einstein': 'Albert_Einstein'},
    'de': {'Fotosynthese': 'Photosynthese'},
}


def summary_json(article: Article, language: str) -> dict[str, Any]:
    """The documented summary shape (Specs/Summary/1.x): title, titles, extract, content_urls, ..."""
    page = f'https://{language}.wikipedia.org/wiki/{quote(article.key)}'
    return {
        'type': 'standard',
        'title': article.key,
        'displaytitle': f'<span class="mw-page-title-main">{article.title}</span>',
        'namespace': {'id': 0, 'text': ''},
        'titles': {'canonical': article.key, 'normalized': article.title, 'display': article.title},
        'pageid': abs(hash(article.key)) % 1_000_000,
        'lang': language,
        'dir': 'ltr',
        'description': article.description,
        'description_source': 'local',
        'content_urls': {
            'desktop': {
                'page': page,
                'revisions': f'https://{language}.wikipedia.org/wiki/{quote(article.key)}?action=history',
                'edit': f'https://{language}.wikipedia.org/wiki/{quote(article.key)}?action=edit',
                'talk': f'https://{language}.wikipedia.org/wiki/Talk:{quote(article.key)}',
            },
            'mobile': {
                'page': f'https://{language}.m.wikipedia.org/wiki/{quote(article.key)}',
                'revisions': f'https://{language}.m.wikipedia.org/wiki/Special:History/{quote(article.key)}',
                'edit': f'https://{language}.m.wikipedia.org/wiki/{quote(article.key)}?action=edit',
                'talk': f'https://{language}.m.wikipedia.org/wiki/Talk:{quote(article.key)}',
            },
        },
        'extract': article.extract,
        'extract_html': f'<p>{article.extract}</p>',
    }


def search_json(article: Article) -> dict[str, Any]:
    """One search result object (MediaWiki REST API: id, key, title, excerpt, matched_title, ...)."""
    return {
        'id': abs(hash(article.key)) % 1_000_000,
        'key': article.key,
        'title': article.title,
        'excerpt': article.extract[:80],
        'matched_title': None,
        'description': article.description,
        'thumbnail': None,
    }


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, list[str]]
    user_agent: str


class FakeWikipedia:
    """``with FakeWikipedia() as wiki: Settings(wikipedia_url=wiki.url_template)``."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.fail_with: int | None = None  # answer every request with this status (e.g. 503)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, 'not started'
        return self._server.server_address[1]

    @property
    def url_template(self) -> str:
        return f'http://127.0.0.1:{self.port}/{{lang}}'

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> FakeWikipedia:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # a client that connects and says nothing cannot hold a thread forever

            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                fake.handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='fake-wikipedia', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeWikipedia:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # --- the API ---------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = parse_qs(url.query)
        self.requests.append(Request(unquote(url.path), query, request.headers.get('User-Agent', '')))
        if self.fail_with is not None:
            self._send(request, self.fail_with, {'type': 'https://mediawiki.org/wiki/HyperSwitch/errors/unknown',
                                                 'title': 'Service unavailable', 'method': 'get'})
            return
        parts = url.path.split('/', 2)  # '', lang, rest
        if len(parts) < 3 or parts[1] not in ARTICLES:
            self._not_found(request, url.path)
            return
        language, rest = parts[1], parts[2]
        if rest.startswith('api/rest_v1/page/summary/'):
            self._summary(request, language, unquote(rest.removeprefix('api/rest_v1/page/summary/')), url.path)
        elif rest == 'w/rest.php/v1/search/page':
            self._search(request, language, query)
        else:
            self._not_found(request, url.path)

    def _summary(self, request: BaseHTTPRequestHandler, language: str, title: str, path: str) -> None:
        key = title.replace(' ', '_')
        key = key[:1].upper() + key[1:]  # MediaWiki titles start with a capital letter
        if (target := REDIRECTS[language].get(key)) is not None:
            request.send_response(302)
            request.send_header('Location', quote(target))
            request.send_header('Content-Length', '0')
            request.end_headers()
            return
        for article in ARTICLES[language]:
            if article.key == key:
                self._send(request, 200, summary_json(article, language))
                return
        self._not_found(request, path)

    def _search(self, request: BaseHTTPRequestHandler, language: str, query: dict[str, list[str]]) -> None:
        words = (query.get('q') or [''])[0].lower().split()
        limit = int((query.get('limit') or ['10'])[0])
        hits = [article for article in ARTICLES[language]  # every word of the query is a word of the title
                if words and set(words) <= set(' '.join((article.title, *article.aliases)).lower().split())]
        self._send(request, 200, {'pages': [search_json(article) for article in hits[:limit]]})

    def _not_found(self, request: BaseHTTPRequestHandler, path: str) -> None:
        # the REST API's error shape
        self._send(request, 404, {'type': 'https://mediawiki.org/wiki/HyperSwitch/errors/not_found',
                                  'title': 'Not found.', 'method': 'get', 'detail': 'Page or revision not found.',
                                  'uri': path})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        content_type = 'application/problem+json' if status >= 400 else 'application/json; charset=utf-8'
        request.send_header('Content-Type', content_type)
        request.send_header('Content-Length', str(len(data)))
        request.end_headers()
        request.wfile.write(data)
