"""The real app in its own process, as a user would start it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

# Tests never reach the internet: unless a test points them at a local stand-in, the web services the
# app may call (Wikipedia, Ollama) are a closed local port, which refuses at once.
OFFLINE = 'http://127.0.0.1:9'
OFFLINE_ENV = {'JARVIS_WIKIPEDIA_URL': OFFLINE, 'OLLAMA_HOST': OFFLINE}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class AppServer:
    def __init__(self, data_dir: Path, *, args: list[str] | None = None, env: dict[str, str] | None = None,
                 port: int | None = None, host: str = '127.0.0.1') -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.host = host
        self.args = args or ['--no-default-model']
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / 'server.log'

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def command(self) -> list[str]:
        return [sys.executable, '-m', 'jarvis', '--no-open', '--host', self.host, '--port', str(self.port),
                '--data-dir', str(self.data_dir), *self.args]

    def environment(self) -> dict[str, str]:
        env = {**os.environ, 'PYTHONUNBUFFERED': '1', **OFFLINE_ENV, **self.env}
        env.pop('PYTEST_CURRENT_TEST', None)  # NiceGUI would take the app for its own test server
        return env

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> AppServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'ab')  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                        env=self.environment())
        if wait:
            try:
                self.wait_until_up(timeout)
            except BaseException:
                self.kill()  # a start that failed or hangs must not outlive the test
                raise
        return self

    def wait_until_up(self, timeout: float = 60.0, path: str = '/api/hub/stats', **kwargs: object) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f'the app exited with {self.process.returncode}:\n{self.output()}')
            try:
                response = httpx.get(self.url + path, timeout=2, **kwargs)  # type: ignore[arg-type]
                if response.status_code < 500 and self._announced():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f'the app did not answer within {timeout} s:\n{self.output()}')

    def _announced(self) -> bool:
        """``jarvis`` prints its address once it has started (a 401 on a token-guarded route comes sooner)."""
        command = self.command()
        runs_jarvis = any(a == '-m' and b == 'jarvis' for a, b in zip(command, command[1:]))
        return not runs_jarvis or 'J.A.R.V.I.S. is at' in self.output()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors='replace')
        except OSError:
            return ''

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._log.close()

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
