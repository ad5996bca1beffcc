"""Notes in the local database: add ("note: buy milk"), list ("show my notes"), delete ("delete note 2")."""
from __future__ import annotations

import re
import time

from ...storage import Database
from ..base import Plugin, PluginContext
from ..language import language_by_vocabulary

# Optional parts never sit between two repeats that take the same characters ("\s*[:,]?\s*" would try
# every split of a long run of spaces): a 32,000-character message is decided in one pass.
_ADD = re.compile(
    r'(?s)^\s*(?:(?:note(?:\s+to\s+self)?|notiz|remember)\s*:'
    r'|(?:(?:take|make|add)\s+(?:a\s+)?note|merke?\s+dir|notiere(?:\s+dir)?|neue\s+notiz)(?:\s*[:,])?)'
    r'\s*(?P<text>\S.*)$',
    re.IGNORECASE)
_LIST = re.compile(
    r'\b(?:show|list|display|read|what are)\s+(?:me\s+)?(?:all\s+)?(?:of\s+)?(?:my\s+|the\s+)?notes\b'
    r'|^\s*(?:my\s+)?notes[\s?.!]*$'
    r'|\b(?:zeige?|zeig|liste|lies|was sind)\s+(?:mir\s+)?(?:alle\s+)?(?:meine\s+|die\s+)?notizen\b'
    r'|^\s*(?:meine\s+)?notizen[\s?.!]*$'
    r'|\bwelche\s+notizen\b|\bhow\s+many\s+notes\b|\bwie\s*viele\s+notizen\b',
    re.IGNORECASE)
# note numbers have at most 9 digits: int() of a 32,000-digit number would raise
_DELETE = re.compile(
    r'\b(?:delete|remove|erase)\s+(?:the\s+)?note\b(?:(?:\s*(?:number|no\.?|nr\.?|#))?\s*(?P<en>\d{1,9})(?!\d))?'
    r'|\b(?:lösche|lösch|entferne)\s+(?:die\s+)?notiz\b(?:(?:\s*(?:nummer|nr\.?|#))?\s*(?P<de>\d{1,9})(?!\d))?'
    r'|\bnotiz(?:\s*(?:nummer|nr\.?|#))?\s*(?P<de2>\d{1,9})\s+(?:löschen|entfernen)\b',
    re.IGNORECASE)
_DELETE_ALL = re.compile(r'\b(?:delete|remove|erase|clear)\s+all\s+(?:my\s+|the\s+)?notes\b'
                         r'|\b(?:lösche|lösch|entferne)\s+alle\s+(?:meine\s+)?notizen\b', re.IGNORECASE)
_GERMAN = re.compile(r'\b(?:notiz|notizen|merke?|merk|dir|notiere|neue|zeige?|zeig|mir|liste|lies|lösche|lösch|'
                     r'entferne|löschen|entfernen|meine|die|alle|welche|wie|viele|nummer|nr)\b', re.IGNORECASE)
_ENGLISH = re.compile(r'\b(?:note|notes|remember|self|take|make|add|show|me|list|display|read|what|are|my|the|all|'
                      r'delete|remove|erase|how|many|number|no)\b', re.IGNORECASE)


class NotesPlugin(Plugin):
    name = 'Notes'
    description = 'Keeps short notes: "note: buy milk", "show my notes", "delete note 2".'
    version = '1.0.0'
    patterns = [_ADD.pattern, _LIST.pattern, _DELETE.pattern, _DELETE_ALL.pattern]

    async def handle(self, message: str, context: PluginContext) -> str | None:
        if (added := _ADD.match(message)) is not None:  # only the command's words tell the language, not the note's
            return await self._add(context, added.group('text').strip(),
                                   _language(message[:added.start('text')], context))
        language = _language(message, context)
        if _DELETE_ALL.search(message):  # deliberately not supported: one slip would lose every note
            if language == 'de':
                return 'Ich lösche Notizen nur einzeln, zum Beispiel „lösche Notiz 2“.'
            return 'I delete notes one at a time, for example "delete note 2".'
        if (found := _DELETE.search(message)) is not None:
            number = found.group('en') or found.group('de') or found.group('de2')
            return await self._delete(context, int(number) if number else None, language)
        if _LIST.search(message):
            return await self._list(context, language)
        return None

    async def _add(self, context: PluginContext, text: str, language: str) -> str:
        count = await context.db.run(_insert, context.db, text)
        if language == 'de':
            return f'Notiert (Notiz {count}): „{text}“'
        return f'Noted (note {count}): “{text}”'

    async def _list(self, context: PluginContext, language: str) -> str:
        notes = await _notes(context)
        if not notes:
            return 'Du hast noch keine Notizen.' if language == 'de' else 'You have no notes yet.'
        heading = 'Deine Notizen:' if language == 'de' else 'Your notes:'
        return '\n'.join([heading, *(f'{number}. {text}' for number, (_, text) in enumerate(notes, start=1))])

    async def _delete(self, context: PluginContext, number: int | None, language: str) -> str:
        if number is None:
            if language == 'de':
                return 'Welche Notiz soll ich löschen? Sag zum Beispiel „lösche Notiz 2“.'
            return 'Which note should I delete? Say for example "delete note 2".'
        notes = await _notes(context)
        if not 1 <= number <= len(notes):
            if language == 'de':
                return f'Es gibt keine Notiz {number} – du hast {_count(len(notes), "Notiz", "Notizen")}.'
            return f'There is no note {number} – you have {_count(len(notes), "note", "notes")}.'
        note_id, text = notes[number - 1]
        await context.db.run(context.db.execute, 'DELETE FROM notes WHERE id = ?', (note_id,))
        if language == 'de':
            return f'Notiz {number} gelöscht: „{text}“'
        return f'Deleted note {number}: “{text}”'


def _language(words: str, context: PluginContext) -> str:
    return language_by_vocabulary(words, _GERMAN, _ENGLISH, context.language)


async def _notes(context: PluginContext) -> list[tuple[int, str]]:
    """All notes, oldest first: their position in this list is the number the user sees."""
    return [(note_id, text) for note_id, text, _ in await context.db.run(read_notes, context.db)]


def read_notes(db: Database) -> list[tuple[int, str, float]]:
    """Every note as (id, text, created_at), oldest first, as the plugin numbers them (in a worker thread)."""
    rows = db.query('SELECT id, text, created_at FROM notes ORDER BY created_at, id')
    return [(row['id'], row['text'], row['created_at']) for row in rows]


def _insert(db: Database, text: str) -> int:
    """Store a note; how many notes there are now (in a worker thread)."""
    db.execute('INSERT INTO notes (text, created_at) VALUES (?, ?)', (text, time.time()))
    return int(db.query_one('SELECT COUNT(*) FROM notes')[0])  # type: ignore[index]


def _count(count: int, singular: str, plural: str) -> str:
    return f'{count} {singular if count == 1 else plural}'
