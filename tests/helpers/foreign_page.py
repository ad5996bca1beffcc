"""A web page from another origin (another local port), served by the standard library's http.server.

``ATTACK_PAGE`` is what a hostile site would do against the app in the user's own browser: no-cors
POSTs with a "simple" content type, which skip the CORS preflight, a preflighted JSON POST, and
WebSockets to the events stream and to NiceGUI's socket; it records what happened in
``window.attack``. ``FRIENDLY_PAGE`` uses the API as a page the user allowed would (``window.result``).
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from .server import free_port

ATTACK_PAGE = """<!doctype html>
<meta charset="utf-8"><title>a foreign page</title>
<script>
const target = 'http://127.0.0.1:TARGET_PORT';
const attack = window.attack = {fetches: [], fetchesDone: false, sockets: {}, opened: [], received: []};
const simplePost = (path, body, type) =>
  fetch(target + path, {method: 'POST', mode: 'no-cors', headers: {'Content-Type': type}, body})
    .then(() => 'answered', e => 'failed: ' + e).then(s => attack.fetches.push(path + ' ' + type + ': ' + s));
Promise.all([
  simplePost('/api/chat', JSON.stringify({message: 'note: planted by a foreign page'}), 'text/plain'),
  simplePost('/api/plugins/toggle', JSON.stringify({plugin: 'Calculator', enabled: false}), 'text/plain'),
  simplePost('/api/plugins/toggle', 'plugin=Calculator&enabled=false', 'application/x-www-form-urlencoded'),
  fetch(target + '/api/chat', {method: 'POST', headers: {'Content-Type': 'application/json'},
                               body: JSON.stringify({message: 'note: planted with a preflight'})})
    .then(() => 'answered', e => 'failed: ' + e).then(s => attack.fetches.push('/api/chat json: ' + s)),
]).then(() => { attack.fetchesDone = true; });
function openSocket(name, url) {
  attack.sockets[name] = 'connecting';
  const socket = new WebSocket(url);
  socket.onopen = () => { attack.sockets[name] = 'open'; attack.opened.push(name); };
  socket.onmessage = message => attack.received.push(name + ': ' + String(message.data).slice(0, 300));
  socket.onclose = () => { attack.sockets[name] = 'closed'; };
}
openSocket('events', 'ws://127.0.0.1:TARGET_PORT/api/events');
openSocket('nicegui', 'ws://127.0.0.1:TARGET_PORT/_nicegui_ws/socket.io/?EIO=4&transport=websocket');
</script>
<p>Nothing to see here.</p>
"""

# a page the user allowed with --allow-origin (a dashboard of their own, say): it may use the API
FRIENDLY_PAGE = """<!doctype html>
<meta charset="utf-8"><title>the user's own dashboard</title>
<script>
const target = 'http://127.0.0.1:TARGET_PORT';
const result = window.result = {events: 'connecting', eventTypes: []};
fetch(target + '/api/chat', {method: 'POST', headers: {'Content-Type': 'application/json'},
                             body: JSON.stringify({message: 'what is 8*8'})})
  .then(r => r.json()).then(body => { result.chat = body.text; }, e => { result.chat = 'failed: ' + e; });
fetch(target + '/api/plugins').then(r => r.json())
  .then(body => { result.plugins = body.map(p => p.name); }, e => { result.plugins = 'failed: ' + e; });
fetch(target + '/api/chat', {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: '{}'})
  .then(r => r.json().then(body => { result.textPlain = r.status + ' ' + body.error; }),
        e => { result.textPlain = 'failed: ' + e; });
const socket = new WebSocket('ws://127.0.0.1:TARGET_PORT/api/events');
socket.onopen = () => { result.events = 'open'; };
socket.onmessage = message => result.eventTypes.push(JSON.parse(message.data).type);
socket.onclose = () => { result.events = 'closed'; };
</script>
"""


class ForeignPage:
    """Serves a page (the attack unless told) at ``http://localhost:<its own port>/`` in a ``with`` block.

    The port is known before the block, so that the app can be started with it allowed."""

    def __init__(self, target_port: int, page_html: str = ATTACK_PAGE) -> None:
        self.page = page_html.replace('TARGET_PORT', str(target_port)).encode()
        page = self.page

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802  # http.server's naming
                self.send_response(200)
                self.send_header('Content-Type', 'text/html; charset=utf-8')
                self.send_header('Content-Length', str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002  # keep test output quiet
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(('127.0.0.1', self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name='foreign-page')

    @property
    def url(self) -> str:
        return f'http://localhost:{self.port}/'

    def __enter__(self) -> ForeignPage:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
