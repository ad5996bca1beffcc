"""Timers and reminders: "remind me in 10 minutes to stretch", "Timer für 30 Sekunden".

Each reminder is a row in ``reminders``; its ``text`` column holds JSON with the language, so the
notification is worded like the request. ``start`` schedules every pending row, so reminders
survive a restart. A reminder is shown only once a window is there to show it (one that came due while
the app was closed waits for the first window, then says when it was due); then it is marked ``fired = 1``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from ...storage import Database
from ..base import Plugin, PluginContext
from ..language import language_by_vocabulary
from .time_date import MONTHS

log = logging.getLogger(__name__)

MAX_SECONDS = 30 * 24 * 3600
LATE_AFTER_S = 60.0  # a reminder fired later than this (the app was closed) says when it was due
POLL_S = 30.0  # re-read the wall clock now and then: a suspended laptop does not advance asyncio's clock

_UNITS: list[tuple[str, int]] = [
    (r'seconds?|secs?|sekunden?|sek|s', 1),
    (r'minutes?|mins?|minuten?|min|m', 60),
    (r'hours?|hrs?|stunden?|std|h', 3600),
    (r'days?|tag(?:en?)?|d', 86400),
    (r'weeks?|wochen?', 7 * 86400),
]
_UNIT_RES = [(re.compile(pattern, re.IGNORECASE), factor) for pattern, factor in _UNITS]
_NUMBER_WORDS: dict[str, float] = {
    'half an': 0.5, 'half a': 0.5, 'eine halbe': 0.5, 'einer halben': 0.5, 'einen halben': 0.5,
    'anderthalb': 1.5, 'eineinhalb': 1.5,
    'a': 1, 'an': 1, 'one': 1, 'ein': 1, 'eine': 1, 'einer': 1, 'einen': 1,
    'two': 2, 'zwei': 2, 'three': 3, 'drei': 3, 'four': 4, 'vier': 4, 'five': 5, 'fünf': 5,
    'ten': 10, 'zehn': 10, 'fifteen': 15, 'fünfzehn': 15, 'twenty': 20, 'zwanzig': 20,
    'thirty': 30, 'dreißig': 30, 'forty-five': 45, 'fünfundvierzig': 45,
}
# Every repeat in a duration is bounded, and a number starts only where a run of digits starts: a
# message of 32,000 digits is decided at once, not retried from each digit with every length.
_WORDS = '|'.join(sorted((re.escape(word).replace(r'\ ', r'\s{1,3}') for word in _NUMBER_WORDS),
                         key=len, reverse=True))
_UNIT = '|'.join(pattern for pattern, _ in _UNITS)
_FULL_UNIT = r'seconds?|sekunden?|minutes?|minuten?|hours?|stunden?|days?|tag(?:en?)?|weeks?|wochen?'
_AMOUNT = r'\d{1,9}(?:[.,]\d{1,6})?'
# "5m" and "30 s" after digits, but a number word needs the whole unit: "am" is not "a m(inute)";
# "-5 minutes" keeps its sign, so that a time in the past is refused instead of read as "5 minutes"
_PART = rf'(?:(?<![\w.,-])-?{_AMOUNT}\s{{0,3}}(?:{_UNIT})|\b(?:{_WORDS})\s{{1,3}}(?:{_FULL_UNIT}))\b'
_PART_PARSE = re.compile(rf'(?:(?P<sign>-)?(?P<digits>{_AMOUNT})\s{{0,3}}(?P<unit>{_UNIT})'
                         rf'|\b(?P<words>{_WORDS})\s{{1,3}}(?P<full_unit>{_FULL_UNIT}))\b', re.IGNORECASE)
_DURATION = rf'{_PART}(?:\s{{0,3}}(?:,|and|und)?\s{{0,3}}{_PART}){{0,5}}'
_WITH_PREPOSITION = re.compile(rf'\b(?:in|for|für|nach|auf|von)\s+{_DURATION}', re.IGNORECASE)
_BARE_DURATION = re.compile(_DURATION, re.IGNORECASE)

_CREATE = (r'\bremind\s+me\b|\berinnere?\s+mich\b'
           r'|\b(?:set|start|create)\s+(?:me\s+)?(?:a\s+|an\s+)?(?:timer|reminder|alarm)\b'
           r'|\b(?:stelle?|starte?|setze?)\s+(?:mir\s+)?(?:einen?\s+)?(?:timer|wecker|erinnerung)\b'
           r'|^\s*(?:timer|reminder|erinnerung)\b')
_CREATE_RE = re.compile(_CREATE, re.IGNORECASE)
_LIST_RE = re.compile(
    r'\b(?:show|list|what are)\s+(?:me\s+)?(?:all\s+)?(?:my\s+|the\s+)?(?:reminders|timers)\b'
    r'|\b(?:zeige?|zeig|liste|welche)\s+(?:mir\s+)?(?:alle\s+)?(?:meine\s+|die\s+)?(?:erinnerungen|timer)\b',
    re.IGNORECASE)
# reminder numbers have at most 9 digits: int() of a 32,000-digit number would raise
_CANCEL_RE = re.compile(
    r'\b(?:cancel|delete|remove|stop)\s+(?:the\s+)?(?:reminder|timer)\b'
    r'(?:(?:\s*(?:number|no\.?|#))?\s*(?P<en>\d{1,9})(?!\d))?'
    r'|\b(?:lösche|lösch|entferne|stoppe?)\s+(?:die\s+|den\s+)?(?:erinnerung|timer)\b'
    r'(?:(?:\s*(?:nummer|nr\.?|#))?\s*(?P<de>\d{1,9})(?!\d))?',
    re.IGNORECASE)
_GERMAN = re.compile(r'\b(?:erinnere?|erinner|mich|für|auf|nach|stelle?|starte?|setze?|einen?|einer|halben?|'
                     r'sekunden?|minuten|stunden?|tage?n?|wochen?|erinnerungen?|zeige?|zeig|mir|meine|lösche|lösch|'
                     r'entferne|stoppe|welche|wecker|anderthalb|ans|an|daran|dass)\b', re.IGNORECASE)
_ENGLISH = re.compile(r'\b(?:remind|me|set|start|create|for|a|an|half|seconds?|secs?|minutes?|mins?|hours?|hrs?|'
                      r'days?|weeks?|reminders?|timers?|show|list|what|are|my|cancel|delete|remove|stop|to|that|'
                      r'about)\b', re.IGNORECASE)
_RECALL = re.compile(r'\bremind\s+me\s+(?:what|who|how|why|where|which|whether|if)\b'
                     r'|\berinnere?\s+mich\s*(?:,\s*)?(?:daran\s*(?:,\s*)?)?(?:was|wer|wie|warum|wo|welche[rsnm]?|ob)\b',
                     re.IGNORECASE)
# matched at a position (never searched): the little words between the command and what to remind of
_CONNECTOR = re.compile(r'(?:[,:;.\-–]|(?:to|that|about|of|for|ans|an|am|zu|zum|zur|daran|dass|für|please|'
                        r'bitte|mal)\b)\s*', re.IGNORECASE)
_TRAILING_WORDS = ('please', 'bitte')
_SPACES = re.compile(r'\s+')


class Duration(NamedTuple):
    seconds: float
    span: tuple[int, int]  # where in the message it was written
    negative: bool  # "in -5 minutes": a moment in the past


@dataclass(frozen=True)
class Reminder:
    text: str  # empty for a plain timer
    language: str
    seconds: float

    def encode(self) -> str:
        return json.dumps({'text': self.text, 'lang': self.language, 'seconds': self.seconds}, ensure_ascii=False)

    @classmethod
    def decode(cls, stored: str) -> Reminder:
        try:
            data = json.loads(stored)
            return cls(text=str(data.get('text', '')), language='de' if data.get('lang') == 'de' else 'en',
                       seconds=float(data.get('seconds', 0)))
        except (ValueError, AttributeError, TypeError):  # a row written by hand: plain text
            return cls(text=stored, language='en', seconds=0)

    def notification(self) -> str:
        if self.text:
            return f'⏰ Erinnerung: {self.text}' if self.language == 'de' else f'⏰ Reminder: {self.text}'
        duration = format_duration(self.seconds, self.language)
        return f'⏰ Timer abgelaufen: {duration}' if self.language == 'de' else f'⏰ Timer done: {duration}'

    def label(self) -> str:
        if self.text:
            return self.text
        return f'Timer ({format_duration(self.seconds, self.language)})'


def parse_duration(text: str) -> Duration | None:
    """The duration in a message; one after "in"/"für" wins over one elsewhere in the text."""
    found = _WITH_PREPOSITION.search(text) or _BARE_DURATION.search(text)
    if found is None:
        return None
    seconds, negative = 0.0, False
    for part in _PART_PARSE.finditer(found.group(0)):
        if part.group('digits') is not None:
            amount, unit = float(part.group('digits').replace(',', '.')), part.group('unit')
        else:
            amount, unit = _NUMBER_WORDS[_SPACES.sub(' ', part.group('words').lower())], part.group('full_unit')
        seconds += amount * next(factor for pattern, factor in _UNIT_RES if pattern.fullmatch(unit))
        negative = negative or part.group('sign') is not None
    return Duration(seconds, found.span(), negative)


def extract_text(message: str, span: tuple[int, int]) -> str:
    """What to remind of: the message without the trigger, the duration and the little words around them.

    It moves two indices instead of cutting the text again for each little word, so a message of
    thousands of "to to to ..." takes one pass."""
    text = _CREATE_RE.sub(' ', f'{message[:span[0]]} {message[span[1]:]}', count=1)
    text = _SPACES.sub(' ', text).strip()
    start, end = 0, len(text)
    while True:
        before = (start, end)
        if (connector := _CONNECTOR.match(text, start, end)) is not None:
            start = connector.end()
        end = _before_trailing(text, start, end)
        if (start, end) == before:
            return text[start:end].strip()


def _before_trailing(text: str, start: int, end: int) -> int:
    """Where the text ends without one trailing ",.!?" run or "please"/"bitte" (and the spaces around)."""
    stop = end
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    if stop > start and text[stop - 1] in ',.!?':
        while stop > start and text[stop - 1] in ',.!?':
            stop -= 1
    else:
        for word in _TRAILING_WORDS:
            first = stop - len(word)
            if first >= start and text[first:stop].lower() == word and (first == start or not _is_word(text[first - 1])):
                stop = first
                break
        else:
            return end
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    return stop


def _is_word(char: str) -> bool:
    return char.isalnum() or char == '_'


def format_duration(seconds: float, language: str, after_in: bool = False) -> str:
    """"2 hours 30 minutes", "1 Tag 2 Stunden"; ``after_in``: German's dative ("in 3 Tagen")."""
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    names = {'de': (('Tag', 'Tagen' if after_in else 'Tage'), ('Stunde', 'Stunden'), ('Minute', 'Minuten'),
                    ('Sekunde', 'Sekunden')),
             'en': (('day', 'days'), ('hour', 'hours'), ('minute', 'minutes'), ('second', 'seconds'))}[language]
    parts = [f'{count} {name[0] if count == 1 else name[1]}'
             for count, name in zip((days, hours, minutes, secs), names) if count]
    return ' '.join(parts) or f'0 {names[3][1]}'


def format_due(due: datetime, now: datetime, language: str, with_seconds: bool) -> str:
    clock = f'{due:%H:%M:%S}' if with_seconds else f'{due:%H:%M}'
    if language == 'de':
        moment = f'{clock} Uhr'
        return moment if due.date() == now.date() else f'{due:%d.%m.%Y} um {moment}'
    return clock if due.date() == now.date() else f'{due.day} {MONTHS["en"][due.month - 1]} {due.year} at {clock}'


def read_pending(db: Database) -> list[tuple[int, Reminder, float]]:
    """The reminders not shown yet as (id, reminder, due_at), soonest first, as the plugin numbers them
    (in a worker thread)."""
    rows = db.query('SELECT id, text, due_at FROM reminders WHERE fired = 0 ORDER BY due_at, id')
    return [(row['id'], Reminder.decode(row['text']), row['due_at']) for row in rows]


class RemindersPlugin(Plugin):
    name = 'Reminders'
    description = 'Timers and reminders that notify every open window when due, also after a restart.'
    version = '1.0.0'
    patterns = [_CREATE, _LIST_RE.pattern, _CANCEL_RE.pattern]

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock  # wall-clock seconds; due_at in the table is on this clock
        self._context: PluginContext | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}

    @property
    def scheduled(self) -> list[int]:
        """Ids of the reminders waiting to fire."""
        return sorted(self._tasks)

    async def start(self, context: PluginContext) -> None:
        await self.stop()
        self._context = context
        rows = await context.db.run(context.db.query,
                                    'SELECT id, text, due_at FROM reminders WHERE fired = 0 ORDER BY due_at')
        for row in rows:
            self._schedule(row['id'], row['text'], row['due_at'])
        if rows:
            log.info('reminders: scheduled %d pending reminder(s)', len(rows))

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def handle(self, message: str, context: PluginContext) -> str | None:
        language = language_by_vocabulary(message, _GERMAN, _ENGLISH, context.language)
        if self._context is None:
            self._context = context  # not started by the app (a test): fire through this context
        if (found := _CANCEL_RE.search(message)) is not None:
            number = found.group('en') or found.group('de')
            return await self._cancel(context, int(number) if number else None, language)
        if _LIST_RE.search(message):
            return await self._list(context, language)
        if _CREATE_RE.search(message):
            return await self._create(message, context, language)
        return None

    async def _create(self, message: str, context: PluginContext, language: str) -> str | None:
        parsed = parse_duration(message)
        if parsed is None:
            if _RECALL.search(message):  # "remind me what we said": a question for the model
                return None
            if language == 'de':
                return ('Wann soll ich dich erinnern? Sag zum Beispiel „erinnere mich in 10 Minuten ans Dehnen“ '
                        'oder „Timer für 5 Minuten“.')
            return 'When should I remind you? Say for example "remind me in 10 minutes to stretch" ' \
                   'or "set a timer for 5 minutes".'
        seconds, span, negative = parsed
        if negative:
            if language == 'de':
                return 'Das liegt in der Vergangenheit. Sag, in wie viel Zeit, zum Beispiel „in 5 Minuten“.'
            return 'That is in the past. Say how long from now, for example "in 5 minutes".'
        if seconds < 1:
            if language == 'de':
                return 'Das ist zu kurz: mindestens 1 Sekunde.'
            return 'That is too short: at least 1 second.'
        if seconds > MAX_SECONDS:
            return ('So weit im Voraus kann ich nicht erinnern: höchstens 30 Tage.' if language == 'de'
                    else 'I can only remind you up to 30 days ahead.')
        reminder = Reminder(text=extract_text(message, span), language=language, seconds=seconds)
        created = self.clock()
        due_at = created + seconds
        reminder_id = await context.db.run(self._insert, context, reminder.encode(), due_at, created)
        self._schedule(reminder_id, reminder.encode(), due_at)
        now = context.now()
        due = format_due(now + timedelta(seconds=seconds), now, language, with_seconds=round(seconds) % 60 != 0)
        duration = format_duration(seconds, language)
        if reminder.text:
            if language == 'de':
                return f'Okay, ich erinnere dich um {due} (in {format_duration(seconds, language, True)}): {reminder.text}'
            return f"Okay, I'll remind you at {due} (in {duration}): {reminder.text}"
        if language == 'de':
            return f'Timer auf {duration} gestellt – er meldet sich um {due}.'
        return f'Timer set for {duration} – it goes off at {due}.'

    @staticmethod
    def _insert(context: PluginContext, stored: str, due_at: float, created: float) -> int:
        cursor = context.db.execute('INSERT INTO reminders (text, due_at, created_at, fired) VALUES (?, ?, ?, 0)',
                                    (stored, due_at, created))
        return int(cursor.lastrowid or 0)

    async def _pending(self, context: PluginContext) -> list[tuple[int, Reminder, float]]:
        return await context.db.run(read_pending, context.db)

    async def _list(self, context: PluginContext, language: str) -> str:
        pending = await self._pending(context)
        if not pending:
            return 'Du hast keine offenen Erinnerungen.' if language == 'de' else 'You have no pending reminders.'
        now, clock = context.now(), self.clock()
        lines = ['Deine Erinnerungen:' if language == 'de' else 'Your reminders:']
        for number, (_, reminder, due_at) in enumerate(pending, start=1):
            due = now + timedelta(seconds=max(0, round(due_at - clock)))
            lines.append(f'{number}. {format_due(due, now, language, with_seconds=False)} – {reminder.label()}')
        return '\n'.join(lines)

    async def _cancel(self, context: PluginContext, number: int | None, language: str) -> str:
        pending = await self._pending(context)
        if number is None and len(pending) == 1:
            number = 1
        if number is None:
            if not pending:
                return 'Du hast keine offenen Erinnerungen.' if language == 'de' else 'You have no pending reminders.'
            if language == 'de':
                return 'Welche Erinnerung soll ich löschen? Sag zum Beispiel „lösche Erinnerung 1“.'
            return 'Which reminder should I cancel? Say for example "cancel reminder 1".'
        if not 1 <= number <= len(pending):
            if language == 'de':
                return f'Es gibt keine Erinnerung {number} – du hast {len(pending)} offene.'
            return f'There is no reminder {number} – you have {len(pending)} pending.'
        reminder_id, reminder, _ = pending[number - 1]
        if (task := self._tasks.pop(reminder_id, None)) is not None:
            task.cancel()
        await context.db.run(context.db.execute, 'DELETE FROM reminders WHERE id = ?', (reminder_id,))
        if language == 'de':
            return f'Erinnerung {number} gelöscht: {reminder.label()}'
        return f'Cancelled reminder {number}: {reminder.label()}'

    def _schedule(self, reminder_id: int, stored: str, due_at: float) -> None:
        if (previous := self._tasks.pop(reminder_id, None)) is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(self._fire_when_due(reminder_id, stored, due_at),
                                                      name=f'reminder:{reminder_id}')
        self._tasks[reminder_id] = task
        task.add_done_callback(lambda done: self._forget(reminder_id, done))

    def _forget(self, reminder_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(reminder_id) is task:
            del self._tasks[reminder_id]

    async def _fire_when_due(self, reminder_id: int, stored: str, due_at: float) -> None:
        while (delay := due_at - self.clock()) > 0:
            await asyncio.sleep(min(delay, POLL_S))
        context = self._context
        if context is None:
            return
        try:
            # a reminder nobody sees is not done: it waits for a window (also one that came due while the
            # app was closed, which is why "fired" is written only after it was shown)
            await context.wait_for_window()
            reminder = Reminder.decode(stored)
            text = reminder.notification()
            late = self.clock() - due_at
            if late > LATE_AFTER_S:
                now = context.now()
                was_due = now - timedelta(minutes=round(late / 60))  # shown to the minute
                due = format_due(was_due, now, reminder.language, with_seconds=False)
                text += f' (fällig um {due})' if reminder.language == 'de' else f' (was due at {due})'
            context.notify_all_windows(text, 'warning')
            await context.db.run(context.db.execute, 'UPDATE reminders SET fired = 1 WHERE id = ?', (reminder_id,))
        except Exception:  # one broken reminder must not hurt the others
            log.exception('reminders: reminder %d failed', reminder_id)
