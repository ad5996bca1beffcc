"""The time a question asks about, in German and English: "10 minutes ago", "at 14:05", "this morning",
"today", "this week", "vor 10 Minuten", "um 14:05", "heute Morgen", "diese Woche".

Every repeat in these patterns is bounded and the question is short (the plugin takes at most a few hundred
characters), so a message of 32,000 characters is decided at once. Times are the machine's local time.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

WindowKind = Literal['ago', 'at', 'last', 'part', 'day', 'week']

_NUMBER_WORDS = {
    'a': 1, 'an': 1, 'one': 1, 'ein': 1, 'eine': 1, 'einer': 1, 'einem': 1, 'two': 2, 'zwei': 2, 'three': 3,
    'drei': 3, 'four': 4, 'vier': 4, 'five': 5, 'fünf': 5, 'ten': 10, 'zehn': 10, 'fifteen': 15, 'fünfzehn': 15,
    'twenty': 20, 'zwanzig': 20, 'thirty': 30, 'dreißig': 30, 'half an': 0.5, 'einer halben': 0.5,
    'couple of': 2, 'paar': 2, 'few': 3,
}
_WORDS = '|'.join(sorted((w.replace(' ', r'\s{1,3}') for w in _NUMBER_WORDS), key=len, reverse=True))
_AMOUNT = rf'(?P<n>\d{{1,4}}|{_WORDS})'
_UNIT = (r'(?P<unit>seconds?|secs?|sekunden?|minutes?|mins?|minuten?|hours?|hrs?|stunden?|days?|tage?n?'
         r'|weeks?|wochen?)')
# by the unit's start: "stunden" is hours, "sekunden" seconds
_SECONDS = (('sec', 1), ('sek', 1), ('min', 60), ('h', 3600), ('stu', 3600), ('d', 86400), ('t', 86400), ('w', 604800))

_AGO = re.compile(rf'\b{_AMOUNT}\s{{1,3}}{_UNIT}\s{{1,3}}ago\b|\bvor\s{{1,3}}{_AMOUNT.replace("?P<n>", "?P<n2>")}'
                  rf'\s{{1,3}}{_UNIT.replace("?P<unit>", "?P<unit2>")}\b', re.IGNORECASE)
_LAST = re.compile(rf'\b(?:last|past|previous|letzten|vergangenen)\s{{1,3}}(?:{_AMOUNT}\s{{1,3}})?{_UNIT}\b',
                   re.IGNORECASE)
_CLOCK = re.compile(r'\b(?:at|um|gegen|around)\s{1,3}(?P<h>[01]?\d|2[0-3])(?:[:.](?P<m>[0-5]\d))?'
                    r'(?:\s{0,2}(?P<suffix>am|pm|uhr|h))?\b', re.IGNORECASE)
_YESTERDAY = re.compile(r'\b(?:yesterday|gestern)\b', re.IGNORECASE)
_TODAY = re.compile(r'\b(?:today|heute|heut)\b', re.IGNORECASE)
_WEEK = re.compile(r'\b(?:this|past|last)\s{1,3}week\b|\bdiese[rn]?\s{1,3}woche\b|\bletzten\s{1,3}woche\b'
                   r'|\blast\s{1,3}7\s{1,3}days\b|\bletzten\s{1,3}7\s{1,3}tage\b', re.IGNORECASE)
_PARTS: tuple[tuple[re.Pattern[str], int, int], ...] = (  # (words, from hour, to hour) of the day asked about
    (re.compile(r'\b(?:morning|vormittag|morgen|früh)\b', re.IGNORECASE), 6, 12),
    (re.compile(r'\b(?:afternoon|nachmittag)\b', re.IGNORECASE), 12, 18),
    (re.compile(r'\b(?:evening|tonight|abend)\b', re.IGNORECASE), 18, 24),
    (re.compile(r'\b(?:night|nacht)\b', re.IGNORECASE), -4, 6),  # from 20:00 the day before
)
_NOW = re.compile(r'\b(?:now|right now|currently|at the moment|jetzt|gerade|aktuell|momentan|im moment)\b',
                  re.IGNORECASE)


@dataclass(frozen=True)
class TimeWindow:
    """A stretch of the past, in Unix seconds; ``kind`` says how it was asked for."""

    start: float
    end: float
    kind: WindowKind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _amount(text: str) -> float:
    text = ' '.join(text.lower().split())
    return float(text) if text.isdigit() else float(_NUMBER_WORDS.get(text, 1))


def _unit_seconds(unit: str) -> int:
    unit = unit.lower()
    return next((seconds for start, seconds in _SECONDS if unit.startswith(start)), 60)


def find_window(question: str, now: float) -> TimeWindow | None:
    """The time ``question`` asks about, ending no later than ``now``; None: it asks about now."""
    moment = datetime.fromtimestamp(now)
    if (found := _AGO.search(question)) is not None:
        amount = _amount(found.group('n') or found.group('n2'))
        seconds = amount * _unit_seconds(found.group('unit') or found.group('unit2'))
        centre = now - seconds
        margin = max(60.0, seconds * 0.2)  # "10 minutes ago" is not to the second: a little on each side
        return TimeWindow(centre - margin, min(now, centre + margin), 'ago')
    if (found := _CLOCK.search(question)) is not None:
        hour, minute = int(found.group('h')), int(found.group('m') or 0)
        suffix = (found.group('suffix') or '').lower()
        if suffix == 'pm' and hour < 12:
            hour += 12
        elif suffix == 'am' and hour == 12:
            hour = 0
        day = moment - timedelta(days=1) if _YESTERDAY.search(question) else moment
        at = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at.timestamp() > now:  # "at 23:00" asked at 09:00 means last night
            at -= timedelta(days=1)
        return TimeWindow(at.timestamp(), at.timestamp() + 59.0, 'at')
    if (found := _LAST.search(question)) is not None:
        amount = _amount(found.group('n')) if found.group('n') else 1.0
        return TimeWindow(now - amount * _unit_seconds(found.group('unit')), now, 'last')
    if _WEEK.search(question):
        monday = (moment - timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        return TimeWindow(monday.timestamp(), now, 'week')
    yesterday = bool(_YESTERDAY.search(question))
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1 if yesterday else 0)
    for words, first, last in _PARTS:
        if words.search(question) and not (words is _PARTS[0][0] and _is_tomorrow(question)):
            start = (midnight + timedelta(hours=first)).timestamp()
            end = min(now, (midnight + timedelta(hours=last)).timestamp())
            if start < end:
                return TimeWindow(start, end, 'part')
    if yesterday:
        return TimeWindow(midnight.timestamp(), (midnight + timedelta(days=1)).timestamp(), 'day')
    if _TODAY.search(question):
        return TimeWindow(midnight.timestamp(), now, 'day')
    return None


_TOMORROW = re.compile(r'\bmorgen\s{1,3}(?:früh|um|abend|nachmittag|vormittag)\b', re.IGNORECASE)
_THIS_MORNING_DE = re.compile(r'\b(?:heute|gestern)\s{1,3}(?:morgen|früh)\b', re.IGNORECASE)


def _is_tomorrow(question: str) -> bool:
    """German "morgen" alone is tomorrow ("morgen früh"); "heute Morgen" is this morning."""
    return bool(_TOMORROW.search(question)) and not _THIS_MORNING_DE.search(question)


def asks_about_now(question: str) -> bool:
    return bool(_NOW.search(question))


# --- naming a window in an answer ----------------------------------------------------------------

_WEEKDAYS = {'en': ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'), 'de': ('Mo', 'Di', 'Mi', 'Do', 'Fr', 'Sa', 'So')}


def _day(moment: datetime, now: datetime, language: str) -> str:
    days = (now.date() - moment.date()).days
    if days == 0:
        return 'heute' if language == 'de' else 'today'
    if days == 1:
        return 'gestern' if language == 'de' else 'yesterday'
    weekday = _WEEKDAYS[language][moment.weekday()]
    return f'{weekday} {moment:%d.%m.}' if language == 'de' else f'{weekday} {moment:%Y-%m-%d}'


def clock_time(timestamp: float) -> str:
    return f'{datetime.fromtimestamp(timestamp):%H:%M}'


def when(timestamp: float, now: float, language: str) -> str:
    """"14:05" today, "gestern 14:05", "Tue 2024-05-07 14:05"."""
    moment, today = datetime.fromtimestamp(timestamp), datetime.fromtimestamp(now)
    if moment.date() == today.date():
        return clock_time(timestamp)
    return f'{_day(moment, today, language)} {clock_time(timestamp)}'


def describe(window: TimeWindow, now: float, language: str) -> str:
    """The window as the answer names it: "today 06:00–12:00", "um 14:05 (heute)", "Mo 06.05. 00:00 – heute 16:30"."""
    start, end, today = datetime.fromtimestamp(window.start), datetime.fromtimestamp(window.end), \
        datetime.fromtimestamp(now)
    if window.kind == 'at':
        day = _day(start, today, language)
        return f'um {start:%H:%M} ({day})' if language == 'de' else f'at {start:%H:%M} ({day})'
    if start.date() == end.date():
        return f'{_day(start, today, language)} {start:%H:%M}–{end:%H:%M}'
    return f'{_day(start, today, language)} {start:%H:%M} – {_day(end, today, language)} {end:%H:%M}'
