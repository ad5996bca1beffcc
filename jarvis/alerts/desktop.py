"""Desktop notifications through the platform's own service, with desktop-notifier: on Linux the
freedesktop notification server on the D-Bus session bus (over dbus-fast), on Windows and macOS
their notification centres.

Where there is none (no session bus, no notification server, a headless machine) the app says so
in one log line, once until it works again, and carries on: the alert still shows in every window.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from desktop_notifier import DesktopNotifier, Icon, Urgency

log = logging.getLogger(__name__)

# connecting to the bus and asking the server, and then sending: each may take this long
TIMEOUT_S = 5.0


class NotDelivered(Exception):
    """The notification service did not take the notification."""


class DesktopNotifications:
    def __init__(self, app_name: str, icon: Path | None = None, *, timeout: float = TIMEOUT_S) -> None:
        self.app_name = app_name
        self.icon = icon
        self.timeout = timeout
        self.sent = 0
        self.failed = 0
        self.unavailable: str | None = None  # why the last try failed, until one works
        self._notifier: DesktopNotifier | None = None
        self._lock = asyncio.Lock()  # one at a time, in order: the first opens the connection the others use

    async def send(self, title: str, message: str, *, critical: bool = False) -> bool:
        """Show a notification on the desktop; False (and one log line per episode) when it cannot."""
        async with self._lock:
            try:
                await asyncio.wait_for(self._send(title, message, critical), self.timeout * 2)
            except Exception as error:  # whatever the platform says: the app carries on without it
                self._close()  # the next try starts from a fresh connection
                self.failed += 1
                self._report(describe(error, self.timeout))
                return False
            self.sent += 1
            if self.unavailable is not None:
                log.info('Desktop notifications work again.')
                self.unavailable = None
            return True

    async def _send(self, title: str, message: str, critical: bool) -> None:
        if self._notifier is None:
            self._notifier = DesktopNotifier(app_name=self.app_name,
                                             app_icon=Icon(path=self.icon) if self.icon else None)
            # connects and asks the server what it can do: unlike send(), this raises what went wrong
            await asyncio.wait_for(self._notifier.get_capabilities(), self.timeout)
        dispatched = asyncio.Event()
        await asyncio.wait_for(self._notifier.send(title, message, urgency=Urgency.Critical if critical
                                                   else Urgency.Normal, on_dispatched=dispatched.set),
                               self.timeout)
        if not dispatched.is_set():  # desktop-notifier logs why and returns
            raise NotDelivered('the notification service did not take the notification')

    async def close(self) -> None:
        async with self._lock:
            self._close()

    def _close(self) -> None:
        """Drop the notifier and its D-Bus connection. desktop-notifier keeps the connection in its backend's
        ``bus`` and offers nothing to close it; left open, every failed try would keep a socket."""
        notifier, self._notifier = self._notifier, None
        bus = getattr(getattr(notifier, '_backend', None), 'bus', None)
        if bus is not None and getattr(bus, 'connected', False):
            try:
                bus.disconnect()
            except Exception:  # already closing: nothing to keep
                log.debug('closing the D-Bus connection failed', exc_info=True)

    def _report(self, reason: str) -> None:
        if self.unavailable is None:
            log.warning('Desktop notifications are unavailable: %s. Alerts still show in the app\'s windows.',
                        reason)
        else:
            log.debug('desktop notification not sent: %s', reason)
        self.unavailable = reason


def describe(error: BaseException, timeout: float = TIMEOUT_S) -> str:
    """Why no notification could be shown, in words (the D-Bus errors named where they are known)."""
    if isinstance(error, asyncio.TimeoutError):
        return f'the notification service did not answer within {timeout:.0f} s'
    name = type(error).__name__
    text = str(error) or name
    if name == 'InvalidAddressError':  # dbus_fast: no DBUS_SESSION_BUS_ADDRESS (and no X11 display to ask)
        return f'there is no D-Bus session bus ({text})'
    if isinstance(error, OSError):
        return f'the D-Bus session bus cannot be reached ({text})'
    if getattr(error, 'type', '') == 'org.freedesktop.DBus.Error.ServiceUnknown':
        return 'no notification server runs on the D-Bus session bus (org.freedesktop.Notifications is missing)'
    return text if isinstance(error, NotDelivered) else f'{name}: {text}'
