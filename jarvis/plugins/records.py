"""What the Notes and Reminders plugins keep, to read outside the chat (the MCP tools).

The plugins own their tables and the way they number the rows ("delete note 2"); this facade reads
them with the plugins' own readers, so that a number here is the number the chat uses, and nothing
outside the storage layer writes SQL for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..storage import Database
from .builtin.notes import read_notes
from .builtin.reminders import read_pending


@dataclass(frozen=True, slots=True)
class Note:
    number: int  # as the chat numbers it ("delete note 2")
    text: str
    created_at: float  # Unix time

    def to_dict(self) -> dict[str, Any]:
        return {'number': self.number, 'text': self.text, 'created_at': self.created_at}


@dataclass(frozen=True, slots=True)
class PendingReminder:
    number: int  # as the chat numbers it ("cancel reminder 1")
    text: str  # what to remind of, or "Timer (5 minutes)" for a plain timer
    due_at: float  # Unix time; in the past for one that waits for a window to show it
    language: str

    def to_dict(self) -> dict[str, Any]:
        return {'number': self.number, 'text': self.text, 'due_at': self.due_at, 'language': self.language}


class PluginRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def notes(self) -> list[Note]:
        """Every note, oldest first."""
        rows = await self._db.run(read_notes, self._db)
        return [Note(number, text, created_at) for number, (_, text, created_at) in enumerate(rows, start=1)]

    async def pending_reminders(self) -> list[PendingReminder]:
        """The reminders and timers not shown yet, soonest first."""
        rows = await self._db.run(read_pending, self._db)
        return [PendingReminder(number, reminder.label(), due_at, reminder.language)
                for number, (_, reminder, due_at) in enumerate(rows, start=1)]
