"""llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``, the ``server`` extra) running
a GGUF: a real OpenAI-compatible server that nobody here wrote, for the tests of remote engines."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from .server import free_port

HOST = '127.0.0.1'


class LlamaServer:
    """``python -m llama_cpp.server --model GGUF --host 127.0.0.1 --port N [--api_key KEY]``."""

    def __init__(self, model_path: Path, log_path: Path, *, api_key: str | None = None,
                 context_length: int = 2048) -> None:
        self.model_path = model_path
        self.log_path = log_path
        self.api_key = api_key
        self.context_length = context_length
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The API's base, as a user adds it."""
        return f'http://{HOST}:{self.port}/v1'

    def command(self) -> list[str]:
        command = [sys.executable, '-m', 'llama_cpp.server', '--model', str(self.model_path), '--host', HOST,
                   '--port', str(self.port), '--n_ctx', str(self.context_length), '--verbose', 'False']
        return command + (['--api_key', self.api_key] if self.api_key else [])

    def start(self, timeout: float = 120.0) -> LlamaServer:
        self._log = open(self.log_path, 'ab')  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        headers = {'Authorization': f'Bearer {self.api_key}'} if self.api_key else {}
        while time.monotonic() < deadline:  # it loads the model before it serves
            if self.process.poll() is not None:
                raise RuntimeError(f'llama_cpp.server exited with {self.process.returncode}:\n{self.output()}')
            try:
                if httpx.get(f'{self.url}/models', headers=headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f'llama_cpp.server did not serve within {timeout} s:\n{self.output()}')

    def model_id(self) -> str:
        """The id its /v1/models lists for the model (the path it was given)."""
        headers = {'Authorization': f'Bearer {self.api_key}'} if self.api_key else {}
        return httpx.get(f'{self.url}/models', headers=headers, timeout=10).json()['data'][0]['id']

    def kill(self) -> None:
        """As a crash: at once, without closing its connections cleanly."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, '_log', None) is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors='replace')[-4000:]
        except OSError:
            return ''

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
