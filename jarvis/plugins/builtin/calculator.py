"""A safe calculator: the expression is parsed with ``ast`` and evaluated node by node from an
allow-list (never ``eval``), with limits so that no input can hang the app or fill its memory."""
from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..base import Plugin, PluginContext
from ..language import language_by_vocabulary

MAX_CHARS = 200
MAX_DIGITS = 10_000
MAX_BITS = math.ceil(MAX_DIGITS * math.log2(10))
MAX_FACTORIAL = 1000
EXACT_BITS = 300  # integers up to about 90 digits are shown exactly, longer ones in scientific notation

Number = int | float

# No two unbounded repeats here can take the same characters one after the other, none is nested in
# another, and none starts a search unguarded: each pattern decides a 32,000-character message in one
# pass (tests/test_plugin_isolation.py audits every pattern of the built-ins).
_LEAD = r"^\s*(?:(?:hey\s+|ok\s+)?jarvis\b(?:\s*[,:])?\s*)?(?:please\s+|bitte\s+)?"
_TRIGGER = (r"(?:what(?:'s|\s+is|\s+are)|calculate|compute|evaluate|how\s+much\s+is|"
            r"was\s+(?:ist|sind|ergibt|gibt)|(?:be)?rechne(?:\s+(?:mal|aus))?|wie\s*viel\s+(?:ist|sind|ergibt|gibt))")
_PREFIX = re.compile(rf'{_LEAD}{_TRIGGER}\b\s*(?::\s*)?', re.IGNORECASE)
_TRAILING_PLEASE = re.compile(r'\b(?:please|bitte)\s*$', re.IGNORECASE)
_TRAILING_PUNCTUATION = re.compile(r'(?<![\s?=.])[\s?=.]+$')
_GERMAN = re.compile(r'\b(?:was|ist|sind|ergibt|rechne|berechne|wie|viel|wieviel|mal|geteilt|dividiert|hoch|wurzel|'
                     r'aus|fakultät|durch|quadrat)\b', re.IGNORECASE)
_ENGLISH = re.compile(r"\b(?:what|what's|is|are|calculate|compute|evaluate|how|much|times|divided|by|power|squared|"
                      r'cubed|square|root|of)\b', re.IGNORECASE)
_NUM = r'(?:\d[\d.,]*|pi|π)'
_WORD_OP = r'(?:mal|times|plus|minus|hoch|geteilt\s+durch|durch|divided\s+by|x)'
_FUNCTION_WORDS = r'(?:sqrt|wurzel|sin|cos|tan|log10|log|ln|exp|abs|round|floor|ceil|factorial|fakultät)'
_DECIMAL_COMMA = re.compile(r'(?<=\d),(?=\d)')
_THOUSANDS_COMMA = re.compile(r'(?<=\d),(?=\d{3}\b)')
_CALL = re.compile(r'[a-z_]\s*\(')
_SPACES = re.compile(r'\s+')
_DECIMAL_POINT = re.compile(r'(?<=\d)\.(?=\d)')
_ARITHMETIC_HINT = re.compile(r'\d\s*(?:[+*/^×÷%]|\*\*)|\d\s+-\s*\d|[+*/^×÷]\s*\d')
_WORDS_OF_MATHS = re.compile(rf'\b(?:{_FUNCTION_WORDS}|pi|e|{_WORD_OP})\b')
_SYMBOLS_OF_MATHS = re.compile(r'[\d\s.,+\-*/^×÷%()!π:°−–]*')
_DIGIT = re.compile(r'\d')

# Words and symbols people type, rewritten into Python's arithmetic syntax. Order matters.
_REWRITES: list[tuple[re.Pattern[str], str]] = [(re.compile(pattern), replacement) for pattern, replacement in [
    (r'[−–]', '-'),
    (r'[×·]', '*'),
    (r'÷', '/'),
    (r'π', 'pi'),
    (r'(?<=\S)\s+:\s+(?=\S)', ' / '),  # German division sign, only with spaces ("12:30" stays a time)
    # "the square root of 144", "die Wurzel aus 144": the article goes too
    (r'(?:\b(?:the|die|der|das|den)\s+)?(?:square\s+root\s+of|(?:quadrat)?wurzel\s+(?:aus|von))\s*'
     r'(-?\d+(?:[.,]\d+)?|pi|e)\b', r'sqrt(\1)'),
    (r'\bwurzel\b', 'sqrt'),
    (r'\bfakultät\b', 'factorial'),
    (r'\b(?:geteilt|dividiert)\s+durch\b|\bdivided\s+by\b|\bdurch\b', ' / '),
    (r'\bmultipliziert\s+mit\b|\bmultiplied\s+by\b|\bmal\b|\btimes\b', ' * '),
    (r'\bplus\b', ' + '),
    (r'\bminus\b', ' - '),
    (r'\bto\s+the\s+power\s+of\b|\bhoch\b', ' ** '),
    (r'\bsquared\b|\b(?:zum|im)\s+quadrat\b', ' ** 2'),
    (r'\bcubed\b', ' ** 3'),
    (r'\bmodulo\b|\bmod\b', ' % '),
    (r'(?<=[\d)])\s*x\s*(?=[\d(])', ' * '),
    (r'\^', '**'),
    (r'(?<![\d.])(\d+(?:\.\d+)?)\s*°', r'(\1*pi/180)'),
    (r'\b(\d+)!(?!=)', r'factorial(\1)'),
]]


class NotAnExpression(Exception):
    """The text is not a calculation: the plugin declines and the model answers."""


class CalculationError(Exception):
    """A calculation that is refused or has no result; ``key`` selects the message."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


MESSAGES: dict[str, dict[str, str]] = {
    'too_long': {
        'en': f'That expression is too long (at most {MAX_CHARS} characters).',
        'de': f'Der Ausdruck ist zu lang (höchstens {MAX_CHARS} Zeichen).',
    },
    'too_large': {
        'en': 'The result would be too large (more than 10,000 digits), so I did not compute it.',
        'de': 'Das Ergebnis wäre zu groß (mehr als 10.000 Stellen), deshalb habe ich es nicht berechnet.',
    },
    'overflow': {
        'en': 'The result is too large to compute.',
        'de': 'Das Ergebnis ist zu groß zum Berechnen.',
    },
    'division_by_zero': {
        'en': 'Division by zero is not defined.',
        'de': 'Division durch null ist nicht definiert.',
    },
    'factorial': {
        'en': f'I only compute factorials of whole numbers from 0 to {MAX_FACTORIAL}.',
        'de': f'Fakultäten berechne ich nur für ganze Zahlen von 0 bis {MAX_FACTORIAL}.',
    },
    'undefined': {
        'en': 'That is not defined for these numbers (e.g. the square root or logarithm of a negative number).',
        'de': 'Das ist für diese Zahlen nicht definiert (z. B. Wurzel oder Logarithmus einer negativen Zahl).',
    },
    'not_real': {
        'en': 'The result is not a real number.',
        'de': 'Das Ergebnis ist keine reelle Zahl.',
    },
}


@dataclass(frozen=True)
class Calculation:
    expression: str  # normalised, as Python would print it
    value: Number


# --- text to expression ----------------------------------------------------------------------

def extract_expression(message: str) -> str:
    """The part of the message after a trigger such as "what is" or "rechne"."""
    text = _PREFIX.sub('', message, count=1).strip()
    text = _TRAILING_PLEASE.sub('', text)
    text = _strip_exclamations(text)  # "what is 2+2!" ends in punctuation; "5!" is a factorial
    return _TRAILING_PUNCTUATION.sub('', text).strip()


def _strip_exclamations(text: str) -> str:
    """Drop the exclamation marks at the end, but keep one right after a number or ")": a factorial."""
    text = text.rstrip()
    start = len(text)
    while start and text[start - 1] == '!':
        start -= 1
    if start == len(text):
        return text
    if start and (text[start - 1].isdigit() or text[start - 1] == ')'):
        start += 1
    return text[:start]


def normalise(expression: str, language: str) -> str:
    text = expression.lower()
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    if language == 'de':
        text = _DECIMAL_COMMA.sub('.', text)  # 2,5 is a decimal comma
        text = text.replace(';', ',')  # with a decimal comma, German calculators separate arguments by ';'
    elif _CALL.search(text) is None:  # inside a call a comma separates arguments
        text = _THOUSANDS_COMMA.sub('', text)  # 1,000 is a thousand in English
        text = _DECIMAL_COMMA.sub('.', text)  # 2,5 from a German keyboard
    return _SPACES.sub(' ', text).strip()


def looks_like_arithmetic(text: str) -> bool:
    """Whether the text (a message or the part after "what is") is a calculation."""
    expression = extract_expression(text)
    if len(expression) > MAX_CHARS:
        return _is_mathematical(expression)
    try:
        parse(normalise(expression, 'en'))
    except (NotAnExpression, CalculationError):
        # "15% of 80", "3 * x": still arithmetic, though not one this calculator takes
        return bool(_ARITHMETIC_HINT.search(text))
    return True


_ALLOWED_NODES = (ast.Expression, ast.Constant, ast.Name, ast.Load, ast.UnaryOp, ast.UAdd, ast.USub, ast.BinOp,
                  ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.Call)


def parse(expression: str) -> ast.Expression:
    """Parse and check against the allow-list; anything else is not a calculation."""
    if not expression:
        raise NotAnExpression(expression)
    try:
        tree = ast.parse(expression, mode='eval')
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise NotAnExpression(expression) from error
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise NotAnExpression(expression)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise NotAnExpression(expression)
        elif isinstance(node, ast.Name) and node.id not in CONSTANTS and node.id not in FUNCTIONS:
            raise NotAnExpression(expression)
        elif isinstance(node, ast.Constant) and type(node.value) not in (int, float):
            raise NotAnExpression(expression)
    body = tree.body
    while isinstance(body, ast.UnaryOp):
        body = body.operand
    if isinstance(body, (ast.Constant, ast.Name)):  # "42" or "pi" alone is not a question for a calculator
        raise NotAnExpression(expression)
    return tree


# --- evaluation ------------------------------------------------------------------------------

def _check(value: Number) -> Number:
    if isinstance(value, complex):
        raise CalculationError('not_real')
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise CalculationError('too_large')
    if isinstance(value, float):
        if math.isnan(value):
            raise CalculationError('undefined')
        if math.isinf(value):
            raise CalculationError('overflow')
    return value


def _power(base: Number, exponent: Number) -> Number:
    if base == 0 and exponent < 0:
        raise CalculationError('division_by_zero')
    if base not in (0, 1, -1) and exponent > 0:
        # Estimate the size with logarithms BEFORE computing: 9**9**9 must be refused at once.
        if exponent * math.log10(abs(base)) > MAX_DIGITS:
            raise CalculationError('too_large')
    return base ** exponent


def _divide(kind: type[ast.operator], left: Number, right: Number) -> Number:
    if right == 0:
        raise CalculationError('division_by_zero')
    if kind is ast.Div:
        return left / right
    if kind is ast.FloorDiv:
        return left // right
    return left % right


def _multiply(left: Number, right: Number) -> Number:
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_BITS + 1:
        raise CalculationError('too_large')
    return left * right


def _integral(value: Number) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if value.is_integer() else None


def _factorial(value: Number) -> int:
    whole = _integral(value)
    if whole is None or not 0 <= whole <= MAX_FACTORIAL:
        raise CalculationError('factorial')
    return math.factorial(whole)


def _round(value: Number, digits: Number = 0) -> Number:
    places = _integral(digits)
    if places is None or abs(places) > 100:
        raise CalculationError('undefined')
    return round(value, places) if places else round(value)


def _log(value: Number, base: Number | None = None) -> float:
    if base is None:
        return math.log10(value)
    if base <= 0 or base == 1:
        raise CalculationError('undefined')
    return math.log(value, base)


def _trig(function: Callable[[float], float]) -> Callable[[Number], float]:
    # 15 decimals: cos(pi/2) reads 0, not 6.1e-17
    return lambda value: round(function(value), 15)


CONSTANTS: dict[str, float] = {'pi': math.pi, 'e': math.e, 'tau': math.tau}
FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {  # function, fewest and most arguments
    'sqrt': (math.sqrt, 1, 1),
    'sin': (_trig(math.sin), 1, 1),
    'cos': (_trig(math.cos), 1, 1),
    'tan': (_trig(math.tan), 1, 1),
    'log': (_log, 1, 2),
    'log10': (math.log10, 1, 1),
    'lg': (math.log10, 1, 1),
    'ln': (math.log, 1, 1),
    'log2': (math.log2, 1, 1),
    'exp': (math.exp, 1, 1),
    'abs': (abs, 1, 1),
    'round': (_round, 1, 2),
    'floor': (math.floor, 1, 1),
    'ceil': (math.ceil, 1, 1),
    'factorial': (_factorial, 1, 1),
}


def _evaluate(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check(node.value)
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _evaluate(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left), _evaluate(node.right)
        try:
            if isinstance(node.op, ast.Add):
                return _check(left + right)
            if isinstance(node.op, ast.Sub):
                return _check(left - right)
            if isinstance(node.op, ast.Mult):
                return _check(_multiply(left, right))
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)):
                return _check(_divide(type(node.op), left, right))
            if isinstance(node.op, ast.Pow):
                return _check(_power(left, right))
        except OverflowError as error:
            raise CalculationError('overflow') from error
        except ZeroDivisionError as error:
            raise CalculationError('division_by_zero') from error
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        function, fewest, most = FUNCTIONS[node.func.id]
        if node.keywords or not fewest <= len(node.args) <= most:
            raise NotAnExpression(node.func.id)
        args = [_evaluate(arg) for arg in node.args]
        try:
            return _check(function(*args))
        except OverflowError as error:
            raise CalculationError('overflow') from error
        except (ValueError, ZeroDivisionError) as error:
            raise CalculationError('undefined') from error
    raise NotAnExpression(type(node).__name__)


def calculate(expression: str, language: str = 'en') -> Calculation:
    """Evaluate a typed expression ("2 hoch 10", "3*(4+5)"); raises NotAnExpression or CalculationError."""
    text = normalise(expression, language)
    tree = parse(text)
    value = _evaluate(tree)
    return Calculation(expression=ast.unparse(tree), value=value)


# --- output ----------------------------------------------------------------------------------

def format_number(value: Number, language: str) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    if isinstance(value, int):
        if value.bit_length() <= EXACT_BITS:
            return str(value)
        magnitude = abs(value)
        exponent = int(math.log10(magnitude))  # a float: may be one off near a power of ten
        mantissa = magnitude // 10 ** (exponent - 11)
        if mantissa >= 10 ** 12:
            exponent += 1
        elif mantissa < 10 ** 11:
            exponent -= 1
        mantissa = magnitude // 10 ** (exponent - 11)  # twelve significant digits, truncated
        digits = str(mantissa)
        sign = '-' if value < 0 else ''
        if language == 'de':
            return f'≈ {sign}{digits[0]},{digits[1:]} · 10^{exponent} ({exponent + 1} Stellen)'
        return f'≈ {sign}{digits[0]}.{digits[1:]} × 10^{exponent} ({exponent + 1} digits)'
    text = f'{value:.12g}'
    return text.replace('.', ',') if language == 'de' else text


def format_expression(expression: str, language: str) -> str:
    text = expression.replace(' ** ', '^').replace('**', '^')
    if language == 'de':  # decimal comma, so arguments are separated by ';'
        text = _DECIMAL_POINT.sub(',', text.replace(', ', '; '))
    return text


def _is_mathematical(expression: str) -> bool:
    """For over-long input: refuse a calculation, but let an ordinary long question pass on."""
    rest = _WORDS_OF_MATHS.sub(' ', expression.lower())
    return bool(_DIGIT.search(rest)) and _SYMBOLS_OF_MATHS.fullmatch(rest) is not None


class CalculatorPlugin(Plugin):
    name = 'Calculator'
    description = 'Calculates arithmetic with powers, roots, trigonometry and factorials, in German and English.'
    version = '1.0.0'
    patterns = [
        rf'{_LEAD}{_TRIGGER}\b(?=.*(?:\d|\b{_FUNCTION_WORDS}\s*\())',
        r'^(?=.*\d)(?=.*[-+*/^×÷%!])[\d\s.,+\-*/^×÷%()!π]+(?:[?=]\s*)?$',
        rf'^[\s\-+(]*{_NUM}\s*{_WORD_OP}[\s\-+(]*(?:\d|pi|π)[\d\s.,+\-*/^×÷%()]*(?:[?=]\s*)?$',
        rf'^\s*{_FUNCTION_WORDS}\s*\(',
    ]

    async def handle(self, message: str, context: PluginContext) -> str | None:
        language = language_by_vocabulary(message, _GERMAN, _ENGLISH, context.language)
        expression = extract_expression(message)
        if len(expression) > MAX_CHARS:
            return MESSAGES['too_long'][language] if _is_mathematical(expression) else None
        try:
            result = calculate(expression, language)
        except NotAnExpression:
            return None
        except CalculationError as error:
            return MESSAGES[error.key][language]
        shown = format_number(result.value, language)
        sign = '' if shown.startswith('≈') else '= '  # an approximation brings its own sign
        return f'{format_expression(result.expression, language)} {sign}{shown}'
