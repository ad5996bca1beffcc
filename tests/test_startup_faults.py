"""Start-up and database faults, and quitting, against the real app process.

A start that cannot go on ends in one line that says what to do and a non-zero exit; a damaged
database is moved aside, a fresh one keeps what could be read, and every window is told; nothing
waits on a start that failed; SIGTERM ends the app, also while a request hangs or an answer streams.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
from nicegui import core
from nicegui.testing.user import User
from selenium.webdriver.common.by import By

from jarvis.assistant.conversations import ConversationStore
from jarvis.config import Settings
from jarvis.events import ChatMessage
from jarvis.services import StartupError
from jarvis.storage import Database, SettingsStore

from .conftest import Harness, simulate
from .helpers.browser import needs_chromium, wait_for
from .helpers.fake_ollama import FakeModel, FakeOllama
from .helpers.server import AppServer

EXIT_WAIT_S = 60  # generous: a failed start exits in a second or two, even on a busy machine
QUIT_WAIT_S = 30  # SIGTERM: uvicorn's 2 s for open requests, 4 s to stop the parts, a 10 s deadline
MOVED_ASIDE = re.compile(r'^jarvis\.db\.corrupt-\d{8}-\d{6}$')
TABLES = ('settings', 'conversations', 'messages', 'notes', 'reminders')


# --- databases with content, damaged for real -------------------------------------------------


@dataclass
class History:
    """What a database held before it was damaged: every row of every table, by table."""

    rows: dict[str, set[tuple]]

    @classmethod
    def read(cls, path: Path) -> History:
        with sqlite3.connect(path) as connection:
            return cls({table: set(connection.execute(f'SELECT * FROM {table}').fetchall()) for table in TABLES})


def write_history(data_dir: Path) -> History:
    """A database with conversations, messages, settings, notes and reminders, left as a crash leaves it:
    the last transactions only in the WAL. Written by the app's own storage code."""
    staging = data_dir.parent / f'staging-{uuid.uuid4().hex[:8]}'
    db = Database(staging / 'jarvis.db')
    settings = SettingsStore(db)
    for key, value in (('ui.dark_mode', False), ('assistant.active_conversation', 'x'), ('plugins.enabled', {})):
        settings.set_blocking(key, value)
    conversations = ConversationStore(db)  # its blocking halves: this runs outside (and inside) event loops
    for number in range(3):
        conversation = conversations._create(f'Conversation {number}')  # pylint: disable=protected-access
        for index in range(20):
            conversations._save_message(ChatMessage(  # pylint: disable=protected-access
                role='user' if index % 2 == 0 else 'assistant', text=f'message {number}.{index} ' + 'y' * 150,
                id=uuid.uuid4().hex, conversation_id=conversation.id))
    db.executemany('INSERT INTO notes(text, created_at) VALUES(?, ?)',
                   [(f'note {index} ' + 'x' * 500, 1_700_000_000.0 + index) for index in range(300)])
    db.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    db.executemany('INSERT INTO reminders(text, due_at, created_at, fired) VALUES(?, ?, ?, 0)',
                   [(f'reminder {index}', 1_900_000_000.0 + index, 1_700_000_000.0) for index in range(5)])
    data_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ('', '-wal'):  # copied while the connection is open: the state a crash leaves
        shutil.copyfile(staging / f'jarvis.db{suffix}', data_dir / f'jarvis.db{suffix}')
    assert (data_dir / 'jarvis.db-wal').stat().st_size > 0, 'the reminders are only in the WAL'
    history = History.read(staging / 'jarvis.db')
    db.close()
    shutil.rmtree(staging)
    return history


def damage(path: Path, kind: str) -> int:
    """Damage a database file as disks and crashes do; returns how many rows the damage took from a table
    whose page was overwritten (0 when the whole file is unreadable)."""
    data = bytearray(path.read_bytes())
    if kind == 'garbage':
        path.write_bytes(random.Random(11).randbytes(len(data)))
        return 0
    if kind == 'truncated':
        path.write_bytes(bytes(data[:len(data) // 3 + 1234]))
        return 0
    assert kind == 'corrupt-pages'
    with sqlite3.connect(f'file:{path}?mode=ro', uri=True) as connection:  # the file's own pages, not the WAL
        page_size = connection.execute('PRAGMA page_size').fetchone()[0]
        leaves = connection.execute("SELECT pageno, ncell FROM dbstat WHERE name = 'notes' AND pagetype = 'leaf' "
                                    'ORDER BY pageno').fetchall()
    page, cells = leaves[len(leaves) // 2]  # a page in the middle; the header on page 1 stays intact
    data[(page - 1) * page_size:page * page_size] = b'\xa5' * page_size
    path.write_bytes(bytes(data))
    return cells


def quick_check_fails(path: Path) -> bool:
    try:
        with sqlite3.connect(f'file:{path}?mode=ro', uri=True) as connection:
            return connection.execute('PRAGMA quick_check').fetchone()[0] != 'ok'
    except sqlite3.DatabaseError:
        return True


# --- the app as a process that is expected to end ----------------------------------------------


def run_to_exit(data_dir: Path, *, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Start ``jarvis --no-open`` and wait for it to end by itself (it must: the start cannot go on)."""
    app = AppServer(data_dir)
    try:
        return subprocess.run([*(prefix or []), *app.command()], capture_output=True, text=True,
                              env=app.environment(), timeout=EXIT_WAIT_S, check=False)
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f'the app did not end by itself within {EXIT_WAIT_S} s: {expired.stderr!r}')


def one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    assert 'Traceback' not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and not result.stdout.strip(), result.stderr + result.stdout
    assert lines[0].startswith('jarvis: ')
    return lines[0]


def _private_mounts_work() -> str | None:
    """Why a private mount namespace (for a read-only or a full disk) cannot be made here, or None."""
    if shutil.which('unshare') is None:
        return 'needs unshare (util-linux)'
    result = subprocess.run([*_unshare(), 'sh', '-c', 'mount -t tmpfs tmpfs /mnt'], capture_output=True,
                            text=True, timeout=30, check=False)
    return None if result.returncode == 0 else f'cannot mount in a private namespace: {result.stderr.strip()}'


def _unshare() -> list[str]:
    # root may mount in a new mount namespace; anyone else needs a user namespace as well
    user = [] if os.geteuid() == 0 else ['--user', '--map-root-user']
    return ['unshare', *user, '--mount', '--propagation', 'private']


def with_private_mounts(script: str) -> list[str]:
    """A command prefix that prepares mounts only the app's process sees, then runs the app."""
    return [*_unshare(), 'sh', '-c', f'{script} && exec "$@"', 'sh']


NO_PRIVATE_MOUNTS = _private_mounts_work()
needs_private_mounts = pytest.mark.skipif(NO_PRIVATE_MOUNTS is not None, reason=NO_PRIVATE_MOUNTS or '')


# --- start-up failures: one line, non-zero exit -------------------------------------------------


def test_a_data_dir_that_is_a_file_ends_in_one_clear_line(tmp_path: Path) -> None:
    a_file = tmp_path / 'notes.txt'
    a_file.write_text('not a folder')
    for data_dir in (a_file, a_file / 'inside'):
        line = one_clear_line(run_to_exit(data_dir))
        assert f'{a_file} is a file, not a folder' in line and '--data-dir' in line, line
    assert a_file.read_text() == 'not a folder'


def test_a_port_in_use_ends_in_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as other:  # another program listens on the port
        other.bind(('127.0.0.1', 0))
        other.listen()
        app = AppServer(tmp_path / 'data', port=other.getsockname()[1])
        result = subprocess.run(app.command(), capture_output=True, text=True, env=app.environment(),
                                timeout=EXIT_WAIT_S, check=False)
    line = one_clear_line(result)
    assert f'Port {app.port} on 127.0.0.1 is in use' in line and '--port' in line, line


@needs_private_mounts
@pytest.mark.parametrize('existing', [False, True], ids=['empty-folder', 'with-history'])
def test_a_read_only_data_dir_ends_in_one_clear_line(tmp_path: Path, existing: bool) -> None:
    data_dir = tmp_path / 'data'
    data_dir.mkdir()
    before = write_history(data_dir) if existing else None
    files = sorted(p.name for p in data_dir.iterdir())
    read_only = f'mount --bind {data_dir} {data_dir} && mount -o remount,ro,bind {data_dir} {data_dir}'
    line = one_clear_line(run_to_exit(data_dir, prefix=with_private_mounts(read_only)))
    assert f'cannot write to {data_dir}' in line and 'writable' in line and '--data-dir' in line, line
    assert sorted(p.name for p in data_dir.iterdir()) == files, 'nothing was moved or created'
    if before is not None:
        assert History.read(data_dir / 'jarvis.db') == before


@needs_private_mounts
@pytest.mark.parametrize('existing', [False, True], ids=['fresh', 'with-history'])
def test_a_full_disk_ends_in_one_clear_line(tmp_path: Path, existing: bool) -> None:
    disk, history = tmp_path / 'disk', tmp_path / 'history'
    disk.mkdir()
    copy = ''
    if existing:
        write_history(history)
        copy = f'mkdir {disk}/data && cp {history}/jarvis.db {history}/jarvis.db-wal {disk}/data/ && '
    fill = (f'mount -t tmpfs -o size=4m tmpfs {disk} && {copy}'
            f'{{ cat /dev/zero > {disk}/filler 2>/dev/null || true; }}')
    line = one_clear_line(run_to_exit(disk / 'data', prefix=with_private_mounts(fill)))
    assert f'The disk that holds {disk / "data"} is full' in line and 'free some space' in line, line


def test_a_database_locked_by_another_program_ends_in_one_clear_line(tmp_path: Path) -> None:
    data_dir = tmp_path / 'data'
    write_history(data_dir)
    other = sqlite3.connect(data_dir / 'jarvis.db', isolation_level=None)
    other.execute('BEGIN EXCLUSIVE')  # another program in the middle of a long write
    try:
        line = one_clear_line(run_to_exit(data_dir))
    finally:
        other.execute('ROLLBACK')
        other.close()
    assert 'locked by another program' in line and str(data_dir / 'jarvis.db') in line, line


def test_a_start_that_fails_while_serving_ends_in_one_clear_line(tmp_path: Path) -> None:
    """The database opens and passes its checks, but a table the start reads is missing: the start fails
    after the server began to serve. The app ends by itself instead of leaving every request waiting."""
    data_dir = tmp_path / 'data'
    write_history(data_dir)
    with sqlite3.connect(data_dir / 'jarvis.db') as connection:
        connection.execute('DROP TABLE settings')
    line = one_clear_line(run_to_exit(data_dir))
    assert 'no such table: settings' in line and 'Move it away' in line, line
    assert not any(MOVED_ASIDE.match(p.name) for p in data_dir.iterdir()), 'a readable database stays where it is'


@asynccontextmanager
async def failed_start(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(data_dir=tmp_path / 'data', load_default_model=False)
    write_history(settings.data_dir)
    with sqlite3.connect(settings.db_path) as connection:
        connection.execute('DROP TABLE settings')
    async with simulate(settings, wait_ready=False) as harness:
        yield harness


async def test_nothing_waits_on_a_start_that_failed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with failed_start(tmp_path) as jarvis:
        with pytest.raises(StartupError, match='no such table: settings'):
            await asyncio.wait_for(jarvis.services.wait_ready(), 30)
        async with jarvis.http() as http:
            for method, path, body in (('GET', '/api/hub/stats', None), ('GET', '/api/chat/history', None),
                                       ('POST', '/api/chat', {'message': 'hello'})):
                response = await asyncio.wait_for(http.request(method, path, json=body), 30)
                assert response.status_code == 503, (path, response.text)
                assert 'no such table: settings' in response.json()['error']
        user: User = jarvis.new_user()
        await asyncio.wait_for(user.open('/chat'), 30)
        await user.should_see('J.A.R.V.I.S. could not start')
        accepted, why, closed = await websocket_messages('/api/events')
        assert accepted['type'] == 'websocket.accept', accepted
        assert 'no such table: settings' in json.loads(why['text'])['error']
        assert closed['type'] == 'websocket.close' and closed['code'] == 1011, closed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], 'said once, without a traceback'


async def websocket_messages(path: str) -> list[dict]:
    """What the app sends a WebSocket client that connects to ``path`` (spoken in ASGI, on this loop)."""
    scope = {'type': 'websocket', 'asgi': {'version': '3.0'}, 'scheme': 'ws', 'path': path, 'raw_path': path.encode(),
             'root_path': '', 'query_string': b'', 'headers': [(b'host', b'127.0.0.1')], 'subprotocols': [],
             'client': ('127.0.0.1', 50000), 'server': ('127.0.0.1', 80)}
    incoming: asyncio.Queue[dict] = asyncio.Queue()
    incoming.put_nowait({'type': 'websocket.connect'})
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if message['type'] == 'websocket.close':
            incoming.put_nowait({'type': 'websocket.disconnect', 'code': message['code']})

    await asyncio.wait_for(core.app(scope, incoming.get, send), 30)
    return sent


# --- a damaged database: moved aside, a fresh one with what could be read ----------------------


@pytest.mark.parametrize('kind', ['corrupt-pages', 'truncated', 'garbage'])
def test_a_damaged_database_is_moved_aside_and_the_app_starts_fresh(tmp_path: Path, kind: str) -> None:
    data_dir = tmp_path / 'data'
    before = write_history(data_dir)
    lost = damage(data_dir / 'jarvis.db', kind)
    assert quick_check_fails(data_dir / 'jarvis.db'), 'the damage is real'
    damaged = {suffix: (data_dir / f'jarvis.db{suffix}').read_bytes() for suffix in ('', '-wal')}

    app = AppServer(data_dir)
    try:
        app.start()
        moved = [p for p in data_dir.iterdir() if MOVED_ASIDE.match(p.name)]
        assert len(moved) == 1, sorted(p.name for p in data_dir.iterdir())
        for suffix, content in damaged.items():  # the damaged file and its WAL, untouched
            assert (data_dir / f'{moved[0].name}{suffix}').read_bytes() == content
        notice = first_notification(app)
        assert notice['level'] == 'warning' and str(moved[0]) in notice['message'], notice
        assert 'moved aside' in notice['message'] and '.recover' in notice['message']
        answer = httpx.post(app.url + '/api/chat', json={'message': 'note: written after the damage'}, timeout=30)
        assert answer.status_code == 200 and answer.json()['status'] == 'done', answer.text
        history = httpx.get(app.url + '/api/chat/history?limit=1000', timeout=30).json()
        assert 'note: written after the damage' in [m['text'] for m in history]
    finally:
        code = app.stop()
    assert code == 0
    output = app.output()
    assert 'Traceback' not in output
    assert [line for line in output.splitlines() if 'moved aside' in line] == [
        line for line in output.splitlines() if 'WARNING' in line and 'damaged' in line], output
    assert len([line for line in output.splitlines() if 'moved aside' in line]) == 1, output

    with sqlite3.connect(data_dir / 'jarvis.db') as connection:
        assert connection.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    after = History.read(data_dir / 'jarvis.db')
    assert 'written after the damage' in {row[1] for row in after.rows['notes']}
    if kind == 'corrupt-pages':  # every row but those on the overwritten page came back, unchanged
        for table in ('settings', 'messages', 'reminders'):
            assert before.rows[table] <= after.rows[table], table
        # (id, title, created_at): the chat above touched its conversation's updated_at
        assert {row[:3] for row in before.rows['conversations']} <= {row[:3] for row in after.rows['conversations']}
        old_notes = {row for row in after.rows['notes'] if row[1] != 'written after the damage'}
        assert old_notes <= before.rows['notes'] and len(old_notes) == len(before.rows['notes']) - lost
        assert len(before.rows['reminders']) == 5, 'what was only in the WAL came back too'
        assert f'{len(old_notes)} notes' in notice['message'] and '60 messages' in notice['message']


def test_a_second_damage_within_the_same_second_never_overwrites_the_first(tmp_path: Path) -> None:
    from jarvis.storage import open_database  # pylint: disable=import-outside-toplevel

    data_dir = tmp_path / 'data'
    write_history(data_dir)
    damage(data_dir / 'jarvis.db', 'garbage')
    first = open_database(data_dir / 'jarvis.db')
    first.db.close()
    (data_dir / 'jarvis.db').write_bytes(b'garbage again' * 1000)
    for suffix in ('-wal', '-shm'):
        (data_dir / f'jarvis.db{suffix}').unlink(missing_ok=True)
    second = open_database(data_dir / 'jarvis.db')
    second.db.close()
    assert first.moved_aside is not None and second.moved_aside is not None
    assert first.moved_aside.moved_to != second.moved_aside.moved_to
    assert second.moved_aside.moved_to.read_bytes() == b'garbage again' * 1000
    assert first.moved_aside.moved_to.exists()


def first_notification(app: AppServer) -> dict:
    """The first ``notification`` a script gets on /api/events: the notice of this start, replayed."""
    async def read() -> dict:
        url = app.url.replace('http', 'ws') + '/api/events?types=notification'
        async with websockets.connect(url) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 30))['data']
    return asyncio.run(read())


async def test_a_window_that_opens_later_shows_the_notice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(data_dir=tmp_path / 'data', load_default_model=False)
    write_history(settings.data_dir)
    damage(settings.db_path, 'corrupt-pages')
    async with simulate(settings) as jarvis:
        for path in ('/', '/chat'):  # every window that opens during this run, on any view
            user = jarvis.new_user()
            await user.open(path)
            await user.should_see('The database was damaged')
    assert len([r for r in caplog.records if 'moved aside' in r.getMessage()]) == 1


@pytest.mark.browser
@needs_chromium
def test_the_notice_shows_in_a_real_browser(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / 'data'
    write_history(data_dir)
    damage(data_dir / 'jarvis.db', 'garbage')
    with AppServer(data_dir) as app:
        browser.get(app.url + '/')
        toast = wait_for(lambda: [e for e in browser.find_elements(By.CSS_SELECTOR, '.q-notification')
                                  if 'The database was damaged' in e.text], timeout=30, message='no notice')
        assert 'moved aside to' in toast[0].text and 'jarvis.db.corrupt-' in toast[0].text


# --- SIGTERM always ends the app ---------------------------------------------------------------


def test_sigterm_ends_the_app_while_a_request_hangs(tmp_path: Path) -> None:
    app = AppServer(tmp_path / 'data')
    try:
        app.start()
        with hung_upload(app), open_events_socket(app):
            wait_for_viewers(app, 1)
            app.process.send_signal(signal.SIGTERM)
            assert app.process.wait(QUIT_WAIT_S) == 0
    finally:
        app.kill()
    assert 'Traceback' not in app.output()


def test_sigterm_while_an_answer_streams_keeps_it_as_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / 'data'
    with FakeOllama([FakeModel('slow:latest')]) as ollama:
        ollama.chat_reply = ' '.join(f'word{index}' for index in range(400))
        ollama.chat_delay = 0.2  # 80 s for the whole answer
        app = AppServer(data_dir, env={'OLLAMA_HOST': ollama.url})
        try:
            app.start()
            assert httpx.post(app.url + '/api/models/load', json={'model': 'slow:latest', 'source': 'ollama'},
                              timeout=30).status_code == 200
            answers: list[httpx.Response] = []
            asker = threading.Thread(target=lambda: answers.append(httpx.post(
                app.url + '/api/chat', json={'message': 'tell me a long story'}, timeout=120)))
            with streaming_answer(app):
                asker.start()
            app.process.send_signal(signal.SIGTERM)
            assert app.process.wait(QUIT_WAIT_S) == 0
            asker.join(QUIT_WAIT_S)
        finally:
            app.kill()
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()['status'] == 'stopped' and answers[0].json()['text'].startswith('word0')
    with sqlite3.connect(data_dir / 'jarvis.db') as connection:
        stored = connection.execute("SELECT status, text FROM messages WHERE role = 'assistant'").fetchall()
    assert stored == [('stopped', answers[0].json()['text'])], 'the partial answer is kept'


def test_sigterm_ends_the_app_even_when_a_worker_thread_never_returns(tmp_path: Path) -> None:
    """A plugin that does its slow work in a thread, as the README says, and never comes back: the thread
    outlives every timeout, and Python would wait for it at exit. The exit deadline ends the process."""
    started = tmp_path / 'sleepy-started'
    app = AppServer(tmp_path / 'data', env={'PYTHONPATH': str(sleepy_plugin(tmp_path / 'plugins')),
                                            'SLEEPY_STARTED': str(started)})
    try:
        app.start()
        asker = threading.Thread(target=ask_and_ignore, args=(app, 'please sleep forever'), daemon=True)
        asker.start()
        wait_for(started.exists, timeout=60, message='the plugin never started')
        app.process.send_signal(signal.SIGTERM)
        assert app.process.wait(QUIT_WAIT_S) == 0
    finally:
        app.kill()
    assert 'did not end within' in app.output()


def test_a_second_sigterm_ends_the_app_at_once(tmp_path: Path) -> None:
    started = tmp_path / 'sleepy-started'
    app = AppServer(tmp_path / 'data', env={'PYTHONPATH': str(sleepy_plugin(tmp_path / 'plugins')),
                                            'SLEEPY_STARTED': str(started)})
    try:
        app.start()
        threading.Thread(target=ask_and_ignore, args=(app, 'please sleep forever'), daemon=True).start()
        wait_for(started.exists, timeout=60, message='the plugin never started')
        app.process.send_signal(signal.SIGTERM)
        wait_for(lambda: not accepts_connections(app), timeout=60, message='the server never began to quit')
        app.process.send_signal(signal.SIGTERM)
        assert app.process.wait(QUIT_WAIT_S) == 0
    finally:
        app.kill()
    assert 'did not end within' not in app.output(), 'ended by the second signal, not by the deadline'


def accepts_connections(app: AppServer) -> bool:
    try:
        socket.create_connection(('127.0.0.1', app.port), timeout=2).close()
    except OSError:
        return False
    return True


def sleepy_plugin(folder: Path) -> Path:
    """A third-party plugin package (code and its dist-info with the entry point) on a path of its own."""
    (folder / 'sleepy_plugin').mkdir(parents=True)
    (folder / 'sleepy_plugin' / '__init__.py').write_text(
        'import asyncio, os, pathlib, time\n'
        'from jarvis.plugins.base import Plugin\n\n\n'
        'class SleepyPlugin(Plugin):\n'
        "    name = 'Sleepy'\n"
        "    description = 'Does its slow work in a thread, which never returns.'\n"
        "    patterns = [r'\\bsleep forever\\b']\n"
        '    timeout = 3600.0\n\n'
        '    async def handle(self, message, context):\n'
        "        pathlib.Path(os.environ['SLEEPY_STARTED']).touch()\n"
        '        await asyncio.to_thread(time.sleep, 3600)\n'
        "        return 'awake'\n")
    info = folder / 'sleepy_plugin-1.0.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: sleepy-plugin\nVersion: 1.0.0\n')
    (info / 'entry_points.txt').write_text('[jarvis.plugins]\nsleepy = sleepy_plugin:SleepyPlugin\n')
    return folder


# --- helpers for the SIGTERM tests --------------------------------------------------------------


@contextmanager
def hung_upload(app: AppServer) -> Iterator[None]:
    """A POST whose body never arrives in full: the request waits for the rest forever."""
    with socket.create_connection(('127.0.0.1', app.port)) as connection:
        connection.sendall(b'POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
                           b'Content-Length: 100\r\n\r\n{"message": ')
        yield


@contextmanager
def open_events_socket(app: AppServer) -> Iterator[None]:
    """An /api/events client that stays connected (in a thread of its own) until the block ends."""
    stop = threading.Event()

    async def listen() -> None:
        try:
            async with websockets.connect(app.url.replace('http', 'ws') + '/api/events') as ws:
                while not stop.is_set():
                    with suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(ws.recv(), 0.2)
        except websockets.ConnectionClosed:
            pass

    thread = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@contextmanager
def streaming_answer(app: AppServer) -> Iterator[None]:
    """Connects to /api/events, runs the block, then waits until an answer streams with some text."""
    connected, streaming = threading.Event(), threading.Event()

    async def watch() -> None:
        async with websockets.connect(app.url.replace('http', 'ws') + '/api/events?types=chat_message') as ws:
            connected.set()
            async for message in ws:
                data = json.loads(message)['data']
                if data['status'] == 'streaming' and data['text']:
                    streaming.set()
                    return

    threading.Thread(target=lambda: asyncio.run(watch()), daemon=True).start()
    assert connected.wait(60), 'the events socket did not connect'
    yield
    assert streaming.wait(60), 'the answer never started streaming'


def wait_for_viewers(app: AppServer, count: int) -> None:
    wait_for(lambda: httpx.get(app.url + '/api/hub/stats', timeout=5).json()['viewers'] >= count, timeout=60,
             message='the events socket did not connect')


def ask_and_ignore(app: AppServer, text: str) -> None:
    try:
        httpx.post(app.url + '/api/chat', json={'message': text}, timeout=120)
    except httpx.HTTPError:
        pass  # the app quits while the plugin sleeps
