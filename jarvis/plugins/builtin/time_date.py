"""Time and date: "Wie spät ist es?", "What time is it?", "Welcher Tag ist heute?", "What's the date?"."""
from __future__ import annotations

import re
from datetime import datetime

from ..base import Plugin, PluginContext
from ..language import language_by_vocabulary

# Spelled out here so that the answer never depends on the machine's locale.
WEEKDAYS = {
    'en': ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'],
    'de': ['Montag', 'Dienstag', 'Mittwoch', 'Donnerstag', 'Freitag', 'Samstag', 'Sonntag'],
}
MONTHS = {
    'en': ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September',
           'October', 'November', 'December'],
    'de': ['Januar', 'Februar', 'März', 'April', 'Mai', 'Juni', 'Juli', 'August', 'September',
           'Oktober', 'November', 'Dezember'],
}

MAX_QUESTION_CHARS = 200  # a question for the clock is short; a longer message is not one

_TIME = re.compile(r"\btime\b|\bclock\b|\bspät\b|\buhr(?:zeit)?\b|\bwie ?viel uhr\b", re.IGNORECASE)
_DATE = re.compile(r'\b(?:date|day|weekday|datum|tag|wochentag|wievielte[nr]?)\b', re.IGNORECASE)
# The question must end there: "what time is it in Tokyo?" or "the time complexity of ..." is not ours.
# Every repeat is bounded or stands alone before the end, so a message padded with 32,000 spaces is
# decided at once instead of trying every way to split the spaces between two repeats.
_END = (r'(?:,?\s{1,3}(?:now|right\s{1,3}now|please|today|bitte|jetzt|gerade|heute|eigentlich|denn|genau)){0,4}'
        r'(?:,\s{0,3}[\w-]{1,40})?[\s?.!]*$')  # and a name: "what time is it, Jarvis?"
_GERMAN = re.compile(r'\b(?:wie|spät|uhr|uhrzeit|welche[rs]?|tag|wochentag|datum|heute|haben|wir|ist|es|'
                     r'wievielte[nr]?)\b', re.IGNORECASE)
_ENGLISH = re.compile(r"\b(?:what|what's|which|time|date|day|weekday|today|today's|is|it|current)\b", re.IGNORECASE)


def format_time(moment: datetime, language: str) -> str:
    return f'Es ist {moment:%H:%M} Uhr.' if language == 'de' else f"It's {moment:%H:%M}."


def format_date(moment: datetime, language: str) -> str:
    weekday = WEEKDAYS[language][moment.weekday()]
    month = MONTHS[language][moment.month - 1]
    if language == 'de':
        return f'Heute ist {weekday}, der {moment.day}. {month} {moment.year}.'
    return f'Today is {weekday}, {moment.day} {month} {moment.year}.'


def _language(message: str, context: PluginContext) -> str:
    return language_by_vocabulary(message, _GERMAN, _ENGLISH, context.language)


class TimeDatePlugin(Plugin):
    name = 'Time and date'
    description = 'Tells the current time, weekday and date.'
    version = '1.0.0'
    max_match_chars = MAX_QUESTION_CHARS
    patterns = [
        rf"\bwhat time is it{_END}",
        rf"\bwhat(?:'s| is) the (?:current |exact )?time{_END}",
        rf'\b(?:the )?current time{_END}',
        rf"\bwhat(?:'s| is) (?:the |today's )?date{_END}",
        rf"\btoday'?s date{_END}",
        rf"\b(?:what|which) (?:week)?day (?:is (?:it|today)|of the week is it){_END}",
        rf"\bwhat(?:'s| is) the day{_END}",
        rf'\bwie spät(?: ist es)?{_END}',
        rf'\bwie ?viel uhr(?: ist es)?{_END}',
        rf'\b(?:welche|wie ist die|aktuelle) uhrzeit(?: ist es| haben wir)?{_END}',
        rf'\bwelche[rs]? (?:tag|wochentag|datum) (?:ist|haben wir)(?: es| heute)?{_END}',
        rf'\b(?:den wievielten haben wir|der wievielte ist){_END}',
    ]

    async def handle(self, message: str, context: PluginContext) -> str | None:
        language = _language(message, context)
        moment = context.now()
        wants_time = bool(_TIME.search(message))
        wants_date = bool(_DATE.search(message))
        if wants_time and not wants_date:
            return format_time(moment, language)
        if wants_date and not wants_time:
            return format_date(moment, language)
        return f'{format_time(moment, language)} {format_date(moment, language)}'
