"""The app as the chat benchmarks run it: ``jarvis --no-open`` in a fresh data folder whose model settings
(and conversations) are seeded beforehand (the app has no HTTP route for model settings), answering
through ``POST /api/chat``, watched by one ``/api/events`` client that notes when each answer's first
words arrive."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from .common import HOST, Processes, free_port, jarvis_command, tail, wait_for, wait_http

MODEL_NAME = 'gemma-3-270m-q4_k_m'


def seed(data_dir: Path, *, options: dict[str, Any], conversations: int = 0) -> list[str]:
    """Write the model settings into a fresh data folder and create conversations; returns their ids."""
    from jarvis.assistant.conversations import ConversationStore  # pylint: disable=import-outside-toplevel
    from jarvis.models.manager import OPTIONS_KEY  # pylint: disable=import-outside-toplevel
    from jarvis.storage import Database, SettingsStore  # pylint: disable=import-outside-toplevel
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / 'jarvis.db')
    try:
        SettingsStore(db).set_blocking(OPTIONS_KEY, options)
        store = ConversationStore(db)

        async def create() -> list[str]:
            return [(await store.create(f'benchmark {i + 1}')).id for i in range(conversations)]

        return asyncio.run(create())
    finally:
        db.close()


class EventsClient:
    """One /api/events client in a thread: counts chat_message events and notes, per answer, when its
    first words arrived (perf_counter of this process)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.chat_events = 0
        self.first_text: dict[str, float] = {}  # answer id -> when its first words arrived
        self.first_text_by_conversation: dict[str, list[tuple[float, str]]] = {}
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name='events-client')

    def start(self) -> EventsClient:
        self._thread.start()
        if not self._connected.wait(30):
            raise TimeoutError('the /api/events client did not connect')
        return self

    def _run(self) -> None:
        from websockets.sync.client import connect  # pylint: disable=import-outside-toplevel
        with connect(self.url + '?types=chat_message', max_size=None) as websocket:
            self._connected.set()
            while not self._stop.is_set():
                try:
                    message = websocket.recv(timeout=0.5)
                except TimeoutError:
                    continue
                arrived = time.perf_counter()
                self.chat_events += 1
                data = json.loads(message)['data']
                if data['role'] == 'assistant' and data['text'] and data['id'] not in self.first_text:
                    self.first_text[data['id']] = arrived
                    self.first_text_by_conversation.setdefault(data['conversation_id'], []).append(
                        (arrived, data['id']))

    def first_words_after(self, conversation_id: str, since: float) -> float | None:
        """When the first words of the first answer in a conversation after ``since`` arrived."""
        times = [t for t, _ in self.first_text_by_conversation.get(conversation_id, []) if t >= since]
        return min(times) if times else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class BenchApp:
    """One launch of the app."""

    def __init__(self, procs: Processes, workdir: Path, models_dir: Path, *, options: dict[str, Any],
                 conversations: int = 0, default_model: bool = True, name: str = 'app') -> None:
        self.procs = procs
        self.port = free_port()
        self.url = f'http://{HOST}:{self.port}'
        self.data_dir = workdir / f'{name}-{self.port}'
        self.log_path = workdir / f'{name}-{self.port}.log'
        self.conversations = seed(self.data_dir, options=options, conversations=conversations)
        command = [*jarvis_command(), '--no-open', '--port', str(self.port), '--data-dir', str(self.data_dir)]
        if not default_model:
            command.append('--no-default-model')
        self.launched = time.perf_counter()
        self.process = procs.popen(command, env={'JARVIS_MODELS_DIR': str(models_dir)}, log_path=self.log_path)
        self.http = httpx.Client(base_url=self.url, timeout=900)
        self.events: EventsClient | None = None

    def wait_ready(self) -> float:
        """Seconds from the launch until it serves."""
        wait_http(self.url + '/api/hub/stats', self.process, log_path=self.log_path)
        return time.perf_counter() - self.launched

    def wait_standby(self) -> None:
        """Until the model for the first message is on standby (the start's check of it is done)."""
        wait_for(lambda: self.model_state() == 'standby', timeout=60,
                 message=f'the default model did not go on standby:\n{tail(self.log_path)}')

    def model_state(self, name: str = MODEL_NAME) -> str | None:
        listed = self.http.get('/api/models').json()
        return next((m['state'] for m in listed['models'] if m['name'] == name), None)

    def load(self, name: str = MODEL_NAME) -> None:
        loaded = self.http.post('/api/models/load', json={'model': name})
        if loaded.status_code != 200:
            raise RuntimeError(f'the app could not load {name}: {loaded.text}')

    def unload(self) -> None:
        self.http.post('/api/models/unload').raise_for_status()

    def listen(self) -> EventsClient:
        self.events = EventsClient(self.url.replace('http://', 'ws://') + '/api/events').start()
        return self.events

    def ask(self, text: str, conversation_id: str | None, *, model: str = MODEL_NAME) -> dict[str, Any]:
        """One answer (without a conversation, in the one the windows show); with an events client, also
        the seconds from the request to its first words."""
        asked = time.perf_counter()
        body = {'message': text, **({'conversation_id': conversation_id} if conversation_id else {})}
        response = self.http.post('/api/chat', json=body)
        response.raise_for_status()
        answer = response.json()
        if answer.get('status') != 'done' or answer.get('source') != model:
            raise RuntimeError(f'the app did not answer with the model: {answer}')
        result = {'tokens': answer['tokens'], 'tokens_per_s': answer['tokens_per_s'],
                  'first_token_s': answer['first_token_s'], 'text': answer['text']}
        if self.events is not None:
            arrived = wait_for(lambda: self.events.first_text.get(answer['id']), timeout=10,
                               message='the events client did not see the answer')
            result['request_to_first_words_s'] = arrived - asked
        return result

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        return self.http.get('/api/chat/history', params={'conversation_id': conversation_id, 'limit': 1000}).json()

    def shown_history(self) -> list[tuple[str, str]]:
        """(role, text) of the messages of the conversation the windows show that a prompt includes."""
        shown = next(c['id'] for c in self.http.get('/api/chat/conversations').json() if c['active'])
        return [(m['role'], m['text']) for m in self.history(shown) if m['status'] in ('done', 'stopped') and m['text']]

    def wait_idle(self, timeout: float = 60.0) -> float:
        """Wait until the app uses next to no CPU (after an answer the model reads the next prompt's
        beginning ahead); returns the seconds waited."""
        from .common import tree_cpu_seconds  # pylint: disable=import-outside-toplevel
        started = time.monotonic()
        process = psutil.Process(self.process.pid)
        while time.monotonic() - started < timeout:
            before = tree_cpu_seconds(process)
            time.sleep(0.5)
            if tree_cpu_seconds(process) - before < 0.05:  # under 10 % of a core
                break
        return time.monotonic() - started

    def rss(self) -> int:
        """Resident memory of the app's process tree."""
        from .common import tree_rss  # pylint: disable=import-outside-toplevel
        try:
            return tree_rss(psutil.Process(self.process.pid))
        except psutil.Error:
            return 0

    def stop(self) -> None:
        if self.events is not None:
            self.events.stop()
            self.events = None
        self.http.close()
        self.procs.stop(self.process)
