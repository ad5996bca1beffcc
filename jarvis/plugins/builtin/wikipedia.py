"""Wikipedia summaries: "wer ist Ada Lovelace?", "what is photosynthesis?", "wikipedia Albert Einstein".

Uses the MediaWiki REST API: ``/api/rest_v1/page/summary/{title}``, and on 404 the search
``/w/rest.php/v1/search/page?q=...&limit=1`` and the summary of its first hit. The article's
language follows the question's. When Wikipedia cannot be reached or has no article, the plugin
steps aside and the model answers, unless the user asked Wikipedia by name.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ... import __version__
from ..base import Plugin, PluginContext, Setting
from ..language import language_by_vocabulary
from .calculator import looks_like_arithmetic

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DEFAULT_URL = 'https://{lang}.wikipedia.org'
MAX_CHARS = 600
MAX_TOPIC_CHARS = 200  # MediaWiki titles have at most 255 bytes; a longer "topic" is a sentence, for the model
MAX_QUESTION_CHARS = MAX_TOPIC_CHARS + 60

# A topic starts with a non-space (\S.*), so no two repeats take the same spaces one after the other.
_NAMING = [  # the user names Wikipedia: when it has nothing, the plugin says so instead of the model guessing
    r'^\s*(?:wikipedia|wiki)(?:\s*[:,])?\s+(?P<topic>\S.*)',
    r'\b(?:search|look\s+up|suche?)\s+(?:on\s+|in\s+|auf\s+)?wikipedia\s+(?:for\s+|nach\s+)?(?P<topic>\S.*)',
]
_EXPLICIT = [
    *_NAMING,
    r'\btell\s+me\s+(?:something\s+|more\s+)?about\s+(?P<topic>\S.*)',
    r'\berzähl(?:e)?\s+(?:mir\s+)?(?:etwas\s+|was\s+|mehr\s+)?über\s+(?P<topic>\S.*)',
    r'\bwas\s+weißt\s+du\s+über\s+(?P<topic>\S.*)',
]
_QUESTION = [
    r"^\s*(?:who|what)\s+(?:is|was|are|were)\s+(?P<topic>\S.*)",
    r"^\s*(?:who's|what's)\s+(?P<topic>\S.*)",
    r'^\s*(?:wer|was)\s+(?:ist|war|sind|waren)\s+(?P<topic>\S.*)',
]
# each pattern with whether it is explicit ("tell me about") and whether it names Wikipedia
_QUESTION_RE: list[tuple[re.Pattern[str], bool, bool]] = [
    *((re.compile(p, re.IGNORECASE), True, p in _NAMING) for p in _EXPLICIT),
    *((re.compile(p, re.IGNORECASE), False, False) for p in _QUESTION),
]
_TRAILING = re.compile(r'(?<![\s?!.])[\s?!.]+$')
_PROPERTY_EN = re.compile(r'^(?:[Tt]he\s+)?[a-z]\w*\s+(?:of|in|for|between|with)\b')
_PROPERTY_DE = re.compile(r'^(?:der|die|das)\s+\w+\s+(?:von|des|der|im|in|für|zwischen)\b', re.IGNORECASE)
_SPACES = re.compile(r'\s+')
_SENTENCE_END = re.compile(r'[.!?](?=\s+\S)')
_ORDINAL = re.compile(r'\d{1,2}')
_INITIAL = re.compile(r'[a-zäöü]')
_GERMAN = re.compile(r'\b(?:wer|was|ist|war|sind|waren|erzähle?|mir|etwas|mehr|über|weißt|du|suche?|nach|auf)\b',
                     re.IGNORECASE)
_ENGLISH = re.compile(r"\b(?:who|what|who's|what's|is|was|are|were|tell|me|something|more|about|search|look|up|on|"
                      r'for)\b', re.IGNORECASE)

# A "who/what is" about the user, the assistant, the moment or small talk is for the model, not an encyclopedia.
_PERSONAL = re.compile(
    r'\b(?:me|my|mine|you|your|yours|yourself|we|our|it|its|he|she|him|they|them|their|this|that|these|those|'
    r'here|there|now|today|tonight|tomorrow|yesterday|time|weather|news|up|new|going|happening|happened|wrong|'
    r'next|better|best|worse|worst|'
    r'ich|mir|mich|mein\w*|du|dir|dich|dein\w*|wir|uns|unser\w*|ihr|euer|es|er|sie|ihn|ihm|dies\w*|hier|dort|'
    r'jetzt|heute|morgen|gestern|uhr|uhrzeit|wetter|nachrichten|los|neu\w*|besser|beste\w*|datum|date)\b',
    re.IGNORECASE)
_PREPOSITION = re.compile(r'^(?:on|in|at|for|with|about|to|from|im|am|auf|für|mit|über|zu|bei)\b', re.IGNORECASE)
_ARTICLE = {
    'en': re.compile(r'^(?:the|a|an)\s+', re.IGNORECASE),
    'de': re.compile(r'^(?:der|die|das|ein|eine|einen|dem|den)\s+', re.IGNORECASE),
}

MESSAGES = {
    'offline': {'en': 'Wikipedia is not reachable right now.', 'de': 'Wikipedia ist gerade nicht erreichbar.'},
    'error': {'en': 'Wikipedia did not answer properly (HTTP {status}).',
              'de': 'Wikipedia hat nicht richtig geantwortet (HTTP {status}).'},
    'not_found': {'en': 'I found no Wikipedia article about “{topic}”.',
                  'de': 'Ich habe keinen Wikipedia-Artikel zu „{topic}“ gefunden.'},
    'more': {'en': 'More on Wikipedia', 'de': 'Mehr auf Wikipedia'},
}

# Abbreviations after which a full stop does not end a sentence ("z. B.", "geb. 1815", "Dr. No").
_ABBREVIATIONS = {
    'z', 'b', 'd', 'h', 'u', 'a', 'o', 'v', 's', 'geb', 'gest', 'bzw', 'ca', 'etc', 'evtl', 'ggf', 'vgl', 'usw', 'dr',
    'prof', 'st', 'nr', 'jh', 'jhd', 'chr', 'mr', 'mrs', 'ms', 'jr', 'sr', 'vs', 'no', 'inc', 'ltd', 'co', 'sog',
    'insb', 'bspw', 'e.g', 'i.e', 'lat', 'engl', 'frz', 'griech', 'altgr', 'eigentl', 'mio', 'mrd', 'ver',
}


class WikipediaUnavailable(Exception):
    """Wikipedia could not be asked (offline, timeout) or answered with a server error."""

    def __init__(self, status: int | None = None) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Question:
    topic: str
    explicit: bool  # the user named Wikipedia or said "tell me about"
    words: str  # the question's own words before the topic: they tell its language
    names_wikipedia: bool = False  # "wikipedia Ada Lovelace", "search Wikipedia for ..."


def question_of(message: str) -> Question | None:
    for pattern, explicit, names_wikipedia in _QUESTION_RE:
        if (found := pattern.search(message)) is not None:
            topic = _TRAILING.sub('', found.group('topic')).strip(' "\'„“”‚‘’')
            if topic:
                return Question(topic, explicit, message[:found.start('topic')], names_wikipedia)
    return None


def is_encyclopedic(topic: str, explicit: bool) -> bool:
    """Whether a topic is worth an article rather than the model's own answer."""
    if len(topic) > MAX_TOPIC_CHARS:
        return False
    if looks_like_arithmetic(topic) or _PERSONAL.search(topic) or _PREPOSITION.match(topic):
        return False
    if explicit:
        return True
    words = topic.split()
    if len(words) > 6:
        return False
    # "the capital of France", "die Hauptstadt von Frankreich": a question about a property, for the model
    if _PROPERTY_EN.match(topic) or _PROPERTY_DE.match(topic):
        return False
    return True


def title_of(topic: str, language: str) -> str:
    topic = _ARTICLE[language].sub('', topic).strip()
    return topic[:1].upper() + topic[1:]  # MediaWiki capitalises the first letter of every title


def shorten(extract: str, sentences: int = 3, max_chars: int = MAX_CHARS) -> str:
    """The first few sentences of an extract, not cut inside "z. B." or "10. Dezember"."""
    text = _SPACES.sub(' ', extract).strip()
    ends: list[int] = []
    for found in _SENTENCE_END.finditer(text):
        # the word before the full stop (spaces are single now, so it starts after the last one)
        token = text[text.rfind(' ', 0, found.start()) + 1:found.start()].lower().lstrip('(„"\'')
        if token in _ABBREVIATIONS or _ORDINAL.fullmatch(token) or _INITIAL.fullmatch(token):
            continue  # an abbreviation, an ordinal ("10. Dezember") or an initial ("John F. Kennedy")
        ends.append(found.end())
        if len(ends) >= sentences:
            break
    # whole sentences that fit; a single overlong one is cut at a word
    candidates = ends if len(ends) >= sentences else [*ends, len(text)]
    fitting = [end for end in candidates if end <= max_chars]
    if fitting:
        return text[:max(fitting)]
    return text[:max_chars].rsplit(' ', 1)[0] + ' …'


class WikipediaPlugin(Plugin):
    name = 'Wikipedia'
    description = 'Looks up a short Wikipedia summary in German or English, with the link to the article.'
    version = '1.0.0'
    patterns = _EXPLICIT + _QUESTION
    settings = {'sentences': Setting(3, min=1, max=10, description='How many sentences of the article to show.')}
    timeout = 15.0  # up to three requests: summary, search, summary
    max_match_chars = MAX_QUESTION_CHARS

    async def handle(self, message: str, context: PluginContext) -> str | None:
        question = question_of(message)
        if question is None or not is_encyclopedic(question.topic, question.explicit):
            return None
        language = language_by_vocabulary(question.words, _GERMAN, _ENGLISH, context.language)
        title = title_of(question.topic, language)
        try:
            summary = await self.lookup(title, language, context)
        except WikipediaUnavailable as error:
            if not question.names_wikipedia:
                return None  # offline or failing: the model answers as well as it can
            if error.status is None:
                return MESSAGES['offline'][language]
            return MESSAGES['error'][language].format(status=error.status)
        if summary is None:
            return MESSAGES['not_found'][language].format(topic=title) if question.names_wikipedia else None
        return self.format_summary(summary, language, context.plugin_settings.get('sentences', 3))

    async def lookup(self, title: str, language: str, context: PluginContext) -> dict[str, Any] | None:
        """The summary JSON of the article, or None when there is none."""
        base = (context.settings.wikipedia_url or DEFAULT_URL).replace('{lang}', language).rstrip('/')
        import httpx  # pylint: disable=import-outside-toplevel  # see user_agent
        headers = {'User-Agent': user_agent(), 'Api-User-Agent': user_agent(), 'Accept': 'application/json'}
        timeout = httpx.Timeout(4.0, connect=3.0)
        try:
            async with httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=True) as client:
                summary = await self._summary(client, base, title)
                if summary is not None:
                    return summary
                response = await client.get(f'{base}/w/rest.php/v1/search/page', params={'q': title, 'limit': 1})
                _raise_for_server_error(response)
                data = response.json() if response.status_code == 200 else {}
                pages = data.get('pages') if isinstance(data, dict) else None
                key = pages[0].get('key') if isinstance(pages, list) and pages and isinstance(pages[0], dict) else None
                return await self._summary(client, base, key) if isinstance(key, str) and key else None
        except (httpx.HTTPError, httpx.InvalidURL) as error:  # offline, refused, timed out, a bad wikipedia_url
            log.info('wikipedia: not reachable: %s', error)
            raise WikipediaUnavailable() from error
        except ValueError as error:  # not JSON
            log.warning('wikipedia: unreadable answer: %s', error)
            raise WikipediaUnavailable(502) from error

    @staticmethod
    async def _summary(client: httpx.AsyncClient, base: str, title: str) -> dict[str, Any] | None:
        response = await client.get(f'{base}/api/rest_v1/page/summary/{quote(title.replace(" ", "_"), safe="")}')
        if response.status_code == 404:
            return None
        _raise_for_server_error(response)
        if response.status_code != 200:
            return None
        data = response.json()
        return data if isinstance(data, dict) and data.get('extract') else None

    @staticmethod
    def format_summary(summary: dict[str, Any], language: str, sentences: int = 3) -> str:
        title = (summary.get('titles') or {}).get('normalized') or str(summary.get('title') or '').replace('_', ' ')
        lines = [f'**{title}**', shorten(summary.get('extract', ''), sentences)]
        link = ((summary.get('content_urls') or {}).get('desktop') or {}).get('page')
        if link:
            lines.append(f'{MESSAGES["more"][language]}: {link}')
        return '\n\n'.join(lines)


@cache
def user_agent() -> str:
    """Wikimedia asks every client to name itself in the User-Agent. (httpx is imported by the first lookup:
    the app's start, which loads the plugins, does not wait for it.)"""
    import httpx  # pylint: disable=import-outside-toplevel
    return f'JARVIS-Desktop/{__version__} (local desktop assistant; Wikipedia plugin) httpx/{httpx.__version__}'


def _raise_for_server_error(response: httpx.Response) -> None:
    if response.status_code >= 500 or response.status_code == 429:
        raise WikipediaUnavailable(response.status_code)
