"""Finds the shapes of regular expression that make Python's backtracking engine slow on long input.

Three shapes, each at least quadratic in the length of a message that almost matches:

- nested: an unbounded repeat inside another unbounded repeat, ``(?:\\s*,\\s*\\w+)*``, ``(a+)+``;
- adjacent: two unbounded repeats that can take the same characters with nothing but optional parts
  between them, ``\\s*[?.!]*\\s*$``, ``\\d+[\\d\\s]*``: every split of a run between them is tried;
- unguarded start: a pattern that may begin with an unbounded repeat that something must follow,
  ``\\d+\\s*min``, ``[\\s?!.]+$``: ``search`` retries it at every position of a long run. A ``^``, ``\\b``
  or a lookbehind in front of it lets it start only where a run starts.

"Unbounded" is ``*``, ``+``, ``{n,}`` and ``{n,m}`` with m above ``MAX_BOUNDED``. It reads the pattern
with the parser of Python's own ``re`` (``re._parser``, as in Python 3.11; an import error says when it moves).
"""
from __future__ import annotations

import re
import re._constants as C  # noqa: N812  pylint: disable=import-private-name
import re._parser as parser  # pylint: disable=import-private-name
from dataclasses import dataclass

MAX_BOUNDED = 50
# the characters a message is made of, for "can these two repeats take the same character?"
ALPHABET = frozenset([chr(code) for code in range(0x250)] + list('\u00a0\u2003\u2009\u202f×÷·π−–—°„“”‚‘’€😀'))
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT}
_GUARDS = {C.AT_BEGINNING, C.AT_BEGINNING_STRING, C.AT_BOUNDARY}


@dataclass(frozen=True)
class Finding:
    pattern: str
    shape: str  # 'nested', 'adjacent' or 'unguarded start'
    detail: str

    def __str__(self) -> str:
        return f'{self.shape}: {self.detail} in {self.pattern!r}'


@dataclass(frozen=True)
class _Repeat:
    """An unbounded repeat and the characters its body can take."""

    text: str
    chars: frozenset[str]


class _Audit:
    def __init__(self, pattern: str, flags: int) -> None:
        self.pattern = pattern
        self.ignorecase = bool(flags & re.IGNORECASE)
        self.findings: list[Finding] = []

    # --- what an item can be -----------------------------------------------------------------

    def chars(self, items: list) -> frozenset[str]:
        """Every character any item (recursively) can consume: a superset is fine for this purpose."""
        found: set[str] = set()
        for op, av in items:
            if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
                found |= self.single(op, av)
            elif op in _REPEATS:
                found |= self.chars(list(av[2]))
            elif op == C.SUBPATTERN:
                found |= self.chars(list(av[3]))
            elif op == C.ATOMIC_GROUP:
                found |= self.chars(list(av))
            elif op == C.BRANCH:
                for branch in av[1]:
                    found |= self.chars(list(branch))
            elif op == C.GROUPREF:
                found |= ALPHABET
        return frozenset(found)

    def single(self, op: object, av: object) -> frozenset[str]:
        if op == C.ANY:
            return ALPHABET
        if op == C.LITERAL:
            return self.cased({chr(av)})  # type: ignore[arg-type]
        if op == C.NOT_LITERAL:
            return ALPHABET - self.cased({chr(av)})  # type: ignore[arg-type]
        negate = False
        chosen: set[str] = set()
        for item_op, item_av in av:  # type: ignore[attr-defined]
            if item_op == C.NEGATE:
                negate = True
            elif item_op == C.LITERAL:
                chosen |= self.cased({chr(item_av)})
            elif item_op == C.RANGE:
                chosen |= self.cased({char for char in ALPHABET if item_av[0] <= ord(char) <= item_av[1]})
            elif item_op == C.CATEGORY:
                chosen |= _category(item_av)
        return frozenset(ALPHABET - chosen if negate else chosen)

    def cased(self, chars: set[str]) -> set[str]:
        if not self.ignorecase:
            return chars
        return chars | {char.lower() for char in chars} | {char.upper() for char in chars if len(char.upper()) == 1}

    # --- the three shapes --------------------------------------------------------------------

    def walk(self, items: list) -> tuple[bool, list[_Repeat], list[_Repeat]]:
        """(nullable, first repeats, last repeats) of a sequence; records findings on the way."""
        nullable = True
        first: list[_Repeat] = []
        last: list[_Repeat] = []  # the unbounded repeats that may have consumed the last characters so far
        for op, av in items:
            item_nullable, item_first, item_last = self.item(op, av)
            for earlier in last:
                for later in item_first:
                    if earlier.chars & later.chars and earlier is not later:
                        self.report('adjacent', f'{earlier.text} then {later.text}')
            if nullable:
                first += item_first
            last = item_last + (last if item_nullable else [])
            nullable = nullable and item_nullable
        return nullable, first, last

    def item(self, op: object, av: object) -> tuple[bool, list[_Repeat], list[_Repeat]]:
        if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            return False, [], []
        if op in _REPEATS:
            low, high, body = av  # type: ignore[misc]
            body = list(body)
            unbounded = high == C.MAXREPEAT or high > MAX_BOUNDED
            text = _render([(op, av)])
            body_nullable, body_first, body_last = self.walk(body)
            if unbounded:
                repeat = _Repeat(text, self.chars(body))
                if self.has_unbounded(body):
                    self.report('nested', f'an unbounded repeat inside {text}')
                return low == 0 or body_nullable, [repeat], [repeat]
            return low == 0 or body_nullable, body_first, body_last
        if op == C.SUBPATTERN:
            return self.walk(list(av[3]))  # type: ignore[index]
        if op == C.ATOMIC_GROUP:
            return self.walk(list(av))  # type: ignore[arg-type]
        if op == C.BRANCH:
            results = [self.walk(list(branch)) for branch in av[1]]  # type: ignore[index]
            return (any(r[0] for r in results), [x for r in results for x in r[1]], [x for r in results for x in r[2]])
        if op in (C.ASSERT, C.ASSERT_NOT):
            self.walk(list(av[1]))  # type: ignore[index]
            return True, [], []
        if op == C.GROUPREF_EXISTS:
            results = [self.walk(list(branch)) for branch in av[1:] if branch]  # type: ignore[index]
            return (True, [x for r in results for x in r[1]], [x for r in results for x in r[2]])
        return True, [], []  # AT, GROUPREF and the like: zero width for this purpose

    def has_unbounded(self, items: list) -> bool:
        for op, av in items:
            if op in _REPEATS and (av[1] == C.MAXREPEAT or av[1] > MAX_BOUNDED):
                return True
            children = _children(op, av)
            if any(self.has_unbounded(child) for child in children):
                return True
        return False

    def unguarded_start(self, items: list, followed: bool = False, guard: tuple[frozenset[str], ...] = ()) -> bool:
        """Report a leading unbounded repeat that ``search`` would retry at every position of a run.

        ``followed``: something after these items must still match. ``guard``: sets of characters; a repeat
        that takes only characters of one of them starts only where a run starts (after ``\\b`` or a
        lookbehind that excludes them).
        Returns whether the items can match the empty string (so the ones after them lead too)."""
        for index, (op, av) in enumerate(items):
            more = followed or index < len(items) - 1
            if op == C.AT and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
                return False
            if op == C.AT and av == C.AT_BOUNDARY:  # a run of word (or of non-word) characters starts here only
                word = frozenset(_category(C.CATEGORY_WORD))
                guard = (*guard, word, ALPHABET - word)
                continue
            if op in (C.ASSERT, C.ASSERT_NOT) and av[0] == -1:  # a lookbehind
                behind = self.chars(list(av[1]))
                excluded = behind if op == C.ASSERT_NOT else ALPHABET - behind
                guard = (*guard, excluded)
                continue
            if op == C.ASSERT:  # a lookahead at the start is tried at every position too
                self.unguarded_start(list(av[1]), True, guard)
                continue
            if op in (C.ASSERT_NOT, C.AT):
                continue
            if op == C.BRANCH:
                nullable = any([self.unguarded_start(list(branch), more, guard) for branch in av[1]])
            elif op == C.SUBPATTERN:
                nullable = self.unguarded_start(list(av[3]), more, guard)
            elif op == C.ATOMIC_GROUP:
                nullable = self.unguarded_start(list(av), more, guard)
            elif op in _REPEATS:
                low, high, body = av
                if high == C.MAXREPEAT or high > MAX_BOUNDED:
                    guarded = any(self.chars(list(body)) <= allowed for allowed in guard)
                    if more and not guarded:
                        self.report('unguarded start', f'{_render([(op, av)])} at the start of a search')
                    nullable = True if low == 0 else self.item(op, av)[0]
                else:
                    body_nullable = self.unguarded_start(list(body), True, guard)
                    nullable = low == 0 or body_nullable
            else:
                nullable = self.item(op, av)[0]
            if not nullable:
                return False
        return True

    def report(self, shape: str, detail: str) -> None:
        finding = Finding(self.pattern, shape, detail)
        if finding not in self.findings:
            self.findings.append(finding)


def audit(pattern: str | re.Pattern[str], flags: int = 0) -> list[Finding]:
    """The slow shapes in one pattern (empty when there are none)."""
    if isinstance(pattern, re.Pattern):
        flags |= pattern.flags
        pattern = pattern.pattern
    tree = parser.parse(pattern, flags)
    checker = _Audit(pattern, flags | tree.state.flags)
    items = list(tree)
    checker.walk(items)
    checker.unguarded_start(items)
    return checker.findings


def _children(op: object, av: object) -> list[list]:
    if op in _REPEATS:
        return [list(av[2])]  # type: ignore[index]
    if op == C.SUBPATTERN:
        return [list(av[3])]  # type: ignore[index]
    if op == C.ATOMIC_GROUP:
        return [list(av)]  # type: ignore[arg-type]
    if op == C.BRANCH:
        return [list(branch) for branch in av[1]]  # type: ignore[index]
    if op in (C.ASSERT, C.ASSERT_NOT):
        return [list(av[1])]  # type: ignore[index]
    if op == C.GROUPREF_EXISTS:
        return [list(branch) for branch in av[1:] if branch]  # type: ignore[index]
    return []


def _category(category: object) -> set[str]:
    tests = {
        C.CATEGORY_DIGIT: str.isdecimal, C.CATEGORY_SPACE: str.isspace,
        C.CATEGORY_WORD: lambda char: char.isalnum() or char == '_',
        C.CATEGORY_UNI_DIGIT: str.isdecimal, C.CATEGORY_UNI_SPACE: str.isspace,
        C.CATEGORY_UNI_WORD: lambda char: char.isalnum() or char == '_',
    }
    negated = {
        C.CATEGORY_NOT_DIGIT: C.CATEGORY_DIGIT, C.CATEGORY_NOT_SPACE: C.CATEGORY_SPACE,
        C.CATEGORY_NOT_WORD: C.CATEGORY_WORD, C.CATEGORY_UNI_NOT_DIGIT: C.CATEGORY_DIGIT,
        C.CATEGORY_UNI_NOT_SPACE: C.CATEGORY_SPACE, C.CATEGORY_UNI_NOT_WORD: C.CATEGORY_WORD,
    }
    if category in negated:
        return set(ALPHABET) - _category(negated[category])
    test = tests.get(category)  # type: ignore[call-overload]
    return {char for char in ALPHABET if test(char)} if test else set(ALPHABET)


_CATEGORY_TEXT = {
    C.CATEGORY_DIGIT: r'\d', C.CATEGORY_NOT_DIGIT: r'\D', C.CATEGORY_SPACE: r'\s', C.CATEGORY_NOT_SPACE: r'\S',
    C.CATEGORY_WORD: r'\w', C.CATEGORY_NOT_WORD: r'\W', C.CATEGORY_UNI_DIGIT: r'\d', C.CATEGORY_UNI_NOT_DIGIT: r'\D',
    C.CATEGORY_UNI_SPACE: r'\s', C.CATEGORY_UNI_NOT_SPACE: r'\S', C.CATEGORY_UNI_WORD: r'\w',
    C.CATEGORY_UNI_NOT_WORD: r'\W',
}


def _render(items: list) -> str:
    """Roughly the source of a parsed piece, to name it in a finding."""
    parts: list[str] = []
    for op, av in items:
        if op == C.LITERAL:
            parts.append(re.escape(chr(av)))
        elif op == C.ANY:
            parts.append('.')
        elif op == C.IN:
            inner = ''.join('^' if o == C.NEGATE else re.escape(chr(a)) if o == C.LITERAL
                            else f'{re.escape(chr(a[0]))}-{re.escape(chr(a[1]))}' if o == C.RANGE
                            else _CATEGORY_TEXT.get(a, '?') for o, a in av)
            parts.append(inner if len(av) == 1 and av[0][0] == C.CATEGORY else f'[{inner}]')
        elif op in _REPEATS:
            low, high, body = av
            quantifier = {(0, C.MAXREPEAT): '*', (1, C.MAXREPEAT): '+', (0, 1): '?'}.get(
                (low, high), f'{{{low},{"" if high == C.MAXREPEAT else high}}}')
            body_text = _render(list(body))
            parts.append((body_text if len(body) == 1 and body[0][0] != C.SUBPATTERN else f'(?:{body_text})')
                         + quantifier + ('?' if op == C.MIN_REPEAT else ''))
        elif op == C.SUBPATTERN:
            parts.append(f'({_render(list(av[3]))})')
        elif op == C.BRANCH:
            parts.append('|'.join(_render(list(branch)) for branch in av[1]))
        else:
            parts.append('…')
    text = ''.join(parts)
    return text if len(text) <= 40 else text[:37] + '...'
