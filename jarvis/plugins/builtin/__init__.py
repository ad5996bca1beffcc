"""The plugins that ship with J.A.R.V.I.S.

Order matters: the first plugin whose pattern matches gets the message, and passes it on by
returning None. Notes and reminders come first (their commands may mention the time or the
CPU); the calculator comes before Wikipedia so that "what is 2+2" is calculated, not looked up.
"""
from __future__ import annotations

from ..base import Plugin
from .calculator import CalculatorPlugin
from .notes import NotesPlugin
from .reminders import RemindersPlugin
from .system_status import SystemStatusPlugin
from .time_date import TimeDatePlugin
from .wikipedia import WikipediaPlugin

BUILTIN_PLUGINS: list[type[Plugin]] = [
    NotesPlugin,
    RemindersPlugin,
    TimeDatePlugin,
    SystemStatusPlugin,
    CalculatorPlugin,
    WikipediaPlugin,
]

__all__ = ['BUILTIN_PLUGINS', 'CalculatorPlugin', 'NotesPlugin', 'RemindersPlugin', 'SystemStatusPlugin',
           'TimeDatePlugin', 'WikipediaPlugin']
