"""Which language a message is in: J.A.R.V.I.S. users speak German and English."""
from __future__ import annotations

import re

_GERMAN_WORDS = {
    'ist', 'es', 'wie', 'was', 'wer', 'wo', 'wann', 'warum', 'der', 'die', 'das', 'ein', 'eine', 'und',
    'nicht', 'ich', 'du', 'mein', 'meine', 'meinen', 'mir', 'mich', 'bitte', 'spät', 'uhr', 'heute',
    'viel', 'viele', 'frei', 'speicher', 'zeige', 'zeig', 'lösche', 'notiz', 'notizen', 'erinnere',
    'erinnerung', 'minuten', 'stunden', 'sekunden', 'in', 'an', 'zu', 'über', 'auslastung', 'welcher',
    'welche', 'datum', 'haben', 'wir', 'rechne', 'wieviel', 'wieviele', 'ausgelastet', 'grafikkarte',
}
_ENGLISH_WORDS = {
    'is', 'it', 'what', 'who', 'where', 'when', 'why', 'how', 'the', 'a', 'an', 'and', 'not', 'my', 'me',
    'please', 'time', 'today', 'much', 'many', 'free', 'memory', 'show', 'delete', 'note', 'notes',
    'remind', 'minutes', 'hours', 'seconds', 'in', 'to', 'about', 'busy', 'which', 'date', 'calculate',
}
_WORD = re.compile(r"[a-zäöüß]+", re.IGNORECASE)
_UMLAUT = re.compile(r'[äöüß]', re.IGNORECASE)


def guess_language(text: str) -> str:
    """'de' or 'en' (English when in doubt)."""
    if _UMLAUT.search(text):
        return 'de'
    words = [w.lower() for w in _WORD.findall(text)]
    german = sum(w in _GERMAN_WORDS for w in words)
    english = sum(w in _ENGLISH_WORDS for w in words)
    return 'de' if german > english else 'en'


def language_by_vocabulary(text: str, german: re.Pattern[str], english: re.Pattern[str], fallback: str) -> str:
    """A plugin's own command words decide ("What time is it, Jürgen?" is English despite the umlaut);
    on a tie the app's general guess (``fallback``) does."""
    german_hits, english_hits = len(german.findall(text)), len(english.findall(text))
    if german_hits == english_hits:
        return fallback
    return 'de' if german_hits > english_hits else 'en'
