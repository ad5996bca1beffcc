"""A desktop notification server for the tests: org.freedesktop.Notifications (the freedesktop
notification spec) on a private D-Bus session bus, built on dbus-fast. It writes each notification
it receives as one JSON line to a file, so a test can see what the app showed on the desktop.

``NotificationBus`` runs it under ``dbus-run-session`` (Debian's ``dbus-daemon``), which starts a
session bus for it and ends the bus when the server ends; ``--no-service`` keeps the bus without the
notification service (a desktop with no notification server).

Run by hand: ``dbus-run-session -- python -m tests.helpers.notification_server --ready R --record N``.
"""
# no `from __future__ import annotations`: dbus-fast reads the D-Bus signatures from the live annotations
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusDict, DBusInt32, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_signal

DBUS_RUN_SESSION = shutil.which('dbus-run-session')
NAME = 'org.freedesktop.Notifications'
PATH = '/org/freedesktop/Notifications'

DBusStrings = Annotated[list[str], DBusSignature('as')]
ServerInformation = Annotated[tuple[str, str, str, str], DBusSignature('ssss')]
Closed = Annotated[tuple[int, int], DBusSignature('uu')]


class Notifications(ServiceInterface):
    def __init__(self, record: Path) -> None:
        super().__init__(NAME)
        self.record = record
        self.next_id = 1

    @dbus_method()
    def Notify(self, app_name: DBusStr, replaces_id: DBusUInt32, app_icon: DBusStr, summary: DBusStr,  # noqa: N802
               body: DBusStr, actions: DBusStrings, hints: DBusDict, expire_timeout: DBusInt32) -> DBusUInt32:
        notification_id, self.next_id = self.next_id, self.next_id + 1
        urgency = hints.get('urgency')
        entry = {'id': notification_id, 'app_name': app_name, 'app_icon': app_icon, 'summary': summary, 'body': body,
                 'urgency': getattr(urgency, 'value', None), 'expire_timeout': expire_timeout}
        with self.record.open('a', encoding='utf-8') as file:
            file.write(json.dumps(entry) + '\n')
        return notification_id

    @dbus_method()
    def CloseNotification(self, notification_id: DBusUInt32) -> None:  # noqa: N802
        self.NotificationClosed(notification_id, 3)

    @dbus_method()
    def GetCapabilities(self) -> DBusStrings:  # noqa: N802
        return ['body']

    @dbus_method()
    def GetServerInformation(self) -> ServerInformation:  # noqa: N802
        return ('jarvis-test-notifications', 'J.A.R.V.I.S. tests', '1.0', '1.2')

    @dbus_signal()
    def NotificationClosed(self, notification_id: int, reason: int) -> Closed:  # noqa: N802
        return (notification_id, reason)


async def serve(ready: Path, record: Path, with_service: bool) -> None:
    bus = await MessageBus().connect()
    if with_service:
        bus.export(PATH, Notifications(record))
        await bus.request_name(NAME)
    record.touch()
    # the address last: the test starts the app once it can read it
    partial = ready.with_suffix('.partial')
    partial.write_text(os.environ['DBUS_SESSION_BUS_ADDRESS'], encoding='utf-8')
    partial.replace(ready)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    bus.disconnect()


class NotificationBus:
    """A private session bus with (or without) the test notification server, for one test."""

    def __init__(self, *, with_service: bool = True) -> None:
        self.with_service = with_service
        self.folder = Path(tempfile.mkdtemp(prefix='jarvis-dbus-'))
        self.ready = self.folder / 'address'
        self.record = self.folder / 'notifications.jsonl'
        self.process: subprocess.Popen | None = None
        self.address = ''

    def start(self, timeout: float = 20.0) -> 'NotificationBus':
        if DBUS_RUN_SESSION is None:
            raise RuntimeError('needs dbus-run-session (Debian: apt-get install dbus-daemon)')
        command = [DBUS_RUN_SESSION, '--', sys.executable, '-m', 'tests.helpers.notification_server',
                   '--ready', str(self.ready), '--record', str(self.record)]
        if not self.with_service:
            command.append('--no-service')
        root = Path(__file__).resolve().parents[2]
        self.process = subprocess.Popen(command, cwd=root, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=(self.folder / 'server.log').open('wb'))
        deadline = time.monotonic() + timeout
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'the notification bus did not start: {self.log()}')
            time.sleep(0.05)
        self.address = self.ready.read_text(encoding='utf-8')
        return self

    def log(self) -> str:
        try:
            return (self.folder / 'server.log').read_text(errors='replace')
        except OSError:
            return ''

    def notifications(self) -> list[dict[str, Any]]:
        """What the server received so far, in order."""
        try:
            lines = self.record.read_text(encoding='utf-8').splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server, and dbus-run-session's bus with it
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> 'NotificationBus':
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--ready', type=Path, required=True, help='where to write the bus address once serving')
    parser.add_argument('--record', type=Path, required=True, help='where to append each notification (JSON lines)')
    parser.add_argument('--no-service', action='store_true', help='a bus without a notification server')
    options = parser.parse_args()
    asyncio.run(serve(options.ready, options.record, with_service=not options.no_service))


if __name__ == '__main__':
    main()
