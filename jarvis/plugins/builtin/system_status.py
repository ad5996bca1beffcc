"""The machine's own state in answers: CPU load, memory, disk space and GPU readings from a fresh sample, and
(through ``jarvis.machine``) what uses the CPU, memory or GPU now or used it at a time in the past, why the
machine feels slow, which alerts fired, and whether a model of a given size fits."""
from __future__ import annotations

import logging
import re
import time

from ...events import GpuReading, SystemMetrics
from ...machine import MachineQueries, answer
from ...machine.answers import number, size
from ..base import Plugin, PluginContext
from ..language import language_by_vocabulary

_CPU = re.compile(r'\b(?:cpu|prozessor|processor)\b', re.IGNORECASE)
_MEMORY = re.compile(r'\b(?:memory|ram|arbeitsspeicher|speicher)\b', re.IGNORECASE)
_DISK = re.compile(r'\b(?:disk|drive|hard drive|festplatte|platte|ssd|laufwerk|storage|speicherplatz|platz)\b',
                   re.IGNORECASE)
_GPU = re.compile(r'\b(?:gpus?|grafikkarte|graphics card|vram)\b', re.IGNORECASE)
_MEMORY_ITSELF = re.compile(r'\b(?:ram|arbeitsspeicher|memory)\b', re.IGNORECASE)
_OVERVIEW = re.compile(r'\bsystem ?status\b|\bsystemauslastung\b|\bsystem (?:load|usage)\b', re.IGNORECASE)
_GERMAN = re.compile(r'\b(?:wie|ist|die|der|den|meine?n?|auslastung|ausgelastet|belegt|frei|speicher|arbeitsspeicher|'
                     r'festplatte|platz|temperatur|grafikkarte|prozessor|laufwerk|speicherplatz|wer|welche[rsn]?|'
                     r'nutzt|verbraucht|heute|gestern|vor|um|warum|wieso|langsam|kann|ich|modell|alarme?|woche|'
                     r'diese[rn]?|am|höchsten|heiß|war|wurde|gab|es|rechner|antwort(?:en)?|minuten?|stunden?)\b',
                     re.IGNORECASE)
_ENGLISH = re.compile(r'\b(?:how|what|is|my|the|load|usage|busy|free|memory|disk|space|temperature|used|which|who|'
                      r'using|uses|today|yesterday|ago|at|why|slow|can|i|run|model|alerts?|week|this|highest|hot|'
                      r'did|get|fired|morning|machine|computer|answers?|minutes?|hours?)\b', re.IGNORECASE)

_LOAD_WORDS = r'(?:load|usage|busy|used|utili[sz]ation|auslastung|ausgelastet|belastet|last|beschäftigt|status)'
_FREE_WORDS = r'(?:free|used|usage|available|left|full|frei|belegt|verfügbar|übrig|voll|auslastung|ausgelastet|' \
              r'how much|wie ?viel|status)'

log = logging.getLogger(__name__)

STALE_AFTER_S = 60.0  # should a fresh reading fail, the answer says how old the one it gives is
MAX_QUESTION_CHARS = 300  # a long message that mentions the CPU in passing is for the model


# what brings a question to the machine's answers besides the status patterns; each repeat is bounded
_RESOURCE = (r'(?:cpu|prozessor|processor|memory|ram|arbeitsspeicher|speicher|gpu|grafikkarte|vram|grafikspeicher|'
             r'disk|festplatte|laufwerk|ssd)')
_USING = (r'(?:using|uses|use|eating|hogging|consuming|holding|holds|taking|occupying|belegt|verbraucht|nutzt|'
          r'nutzen|benutzt|genutzt|belastet|frisst|beansprucht|braucht|auslastet)')
_PAST = (r'(?:ago|vor|at|um|today|heute|yesterday|gestern|morning|morgen|früh|vormittag|afternoon|nachmittag|'
         r'evening|abend|night|nacht|week|woche|last|letzten|past|vergangenen)')


# the status questions of old: CPU load, free memory, GPU readings, disk space, the system status
_STATUS_PATTERNS = [
    rf'^(?=.*\b(?:cpu|prozessor|processor)\b)(?=.*\b{_LOAD_WORDS}\b)',
    rf'^(?=.*\b(?:memory|ram|arbeitsspeicher|speicher)\b)(?=.*\b{_FREE_WORDS}\b)',
    r'^(?=.*\b(?:gpus?|grafikkarte|graphics card|vram)\b)'
    r'(?=.*(?:temperat|load|usage|busy|auslastung|ausgelastet|speicher|memory|status|heiß|hot|warm|power|'
    r'strom|watt|\bfan\b|lüfter|how|wie))',
    r'^(?=.*\b(?:disk|drive|festplatte|platte|ssd|laufwerk|speicherplatz)\b)'
    r'(?=.*\b(?:space|free|used|full|platz|frei|belegt|voll|how much|wie ?viel|usage|auslastung)\b)',
    r'\bdisk space\b|\bspeicherplatz\b',
    r'\bsystem ?status\b|\bsystemauslastung\b|\bsystem (?:load|usage)\b',
]
_STATUS = [re.compile(pattern, re.IGNORECASE) for pattern in _STATUS_PATTERNS]


class SystemStatusPlugin(Plugin):
    name = 'System status'
    description = ('Answers from the live system monitor and its history: CPU load, memory, disk space and the '
                   'GPU, what uses them now or used them then, why the machine is slow, which alerts fired, '
                   'and whether a model of a given size fits.')
    version = '1.1.0'
    max_match_chars = MAX_QUESTION_CHARS
    patterns = [
        *_STATUS_PATTERNS,
        # what uses a resource, now or then: "what is using my CPU", "was belegt den Arbeitsspeicher"
        rf'^(?=.*\b(?:what|which|who|was|wer|welche[rsn]?)\b)(?=.*\b{_USING}\b)(?=.*\b{_RESOURCE}\b)',
        rf'^(?=.*\b(?:what|which|welche[rsn]?)\b)(?=.*\b(?:process(?:es)?|prozesse?|programs?|programme?)\b)'
        rf'(?=.*\b(?:{_RESOURCE}|busy|beschäftigt|laufen|running)\b)',
        # the past: "how busy was the CPU this morning", "when was memory highest this week"
        rf'^(?=.*\b{_RESOURCE}\b)(?=.*\b(?:when|wann|how|wie)\b)(?=.*\b{_PAST}\b)',
        r'^(?=.*\b(?:alerts?|alarms?|alarme?|warnungen)\b)(?=.*\b(?:which|what|any|fired|triggered|welche|gab|'
        r'ausgelöst|today|heute|yesterday|gestern|week|woche|how many|wie ?viele)\b)',
        # "why is my computer so slow?", "warum ist die Antwort so langsam?"
        r'^(?=.*\b(?:why|warum|wieso|weshalb)\b)(?=.*\b(?:slow|slowly|sluggish|laggy|langsam|träge|lahm|zäh|'
        r'ruckelt|hängt)\b)'
        r'(?=.*\b(?:computer|pc|laptop|notebook|desktop|machine|system|rechner|it|everything|alles|answers?|'
        r'antwort(?:en)?|responses?|repl(?:y|ies)|model|modell|chat|jarvis|tokens?)\b)',
        # "can I run a 7B model?", "passt ein 13B-Modell?"
        r'(?<![\w.,])\d{1,4}(?:[.,]\d{1,2})?\s{0,2}(?:b|bn|billion|milliarden|mrd)(?!\w)'
        r'(?=.{0,60}\b(?:models?|modell(?:e|s)?|llms?|parameters?|parameter)\b)',
        r'\b(?:run|fit|load|laufen|läuft|passt|laden)\b.{0,60}(?<![\w.,])\d{1,4}(?:[.,]\d{1,2})?\s{0,2}'
        r'(?:b|bn|billion|milliarden|mrd)(?!\w)',
    ]

    async def handle(self, message: str, context: PluginContext) -> str | None:
        language = _language(message, context)
        if context.machine is not None:
            found = await answer(message, MachineQueries(context.machine), language)
            if found is not None:
                return found.text
        if not any(pattern.search(message) for pattern in _STATUS):
            return None  # "tell me about the 7B model Mistral": not a question about this machine after all
        metrics = await _reading(context)
        if metrics is None:
            if language == 'de':
                return 'Ich habe noch keine Systemmessung. Öffne die Systemansicht oder frag gleich noch einmal.'
            return 'There is no system reading yet. Open the System view or ask again in a moment.'
        topics = _topics(message)
        lines = [_LINES[topic](metrics, language) for topic in topics]
        age = time.time() - metrics.timestamp
        if age > STALE_AFTER_S:
            minutes = max(1, round(age / 60))
            lines.append(f'(Messung von vor {minutes} min)' if language == 'de' else f'(measured {minutes} min ago)')
        return '\n'.join(lines)


async def _reading(context: PluginContext) -> SystemMetrics | None:
    """A fresh reading: the sampler idles while no window is open, so a script's question takes one now."""
    try:
        return await context.current_metrics()
    except Exception as error:  # the machine could not be read just now: the latest reading will do
        log.warning('system status: no fresh reading (%s); using the latest', error)
        return context.latest_metrics()


def _language(message: str, context: PluginContext) -> str:
    return language_by_vocabulary(message, _GERMAN, _ENGLISH, context.language)


def _topics(message: str) -> list[str]:
    disk = bool(_DISK.search(message))
    # "Speicherplatz" and "free space on the disk" are about the disk, not the memory
    memory = bool(_MEMORY.search(message)) and not (disk and not _MEMORY_ITSELF.search(message))
    found = [name for name, present in (('cpu', bool(_CPU.search(message))), ('memory', memory),
                                        ('disk', disk), ('gpu', bool(_GPU.search(message)))) if present]
    if not found or _OVERVIEW.search(message):
        return ['cpu', 'memory', 'disk', 'gpu']
    return found


def _na(language: str) -> str:
    return 'nicht verfügbar' if language == 'de' else 'n/a'


def _cpu(metrics: SystemMetrics, language: str) -> str:
    load = number(metrics.cpu, language)
    cores = metrics.cpu_count or len(metrics.cpu_per_core)
    busiest = max(metrics.cpu_per_core) if metrics.cpu_per_core else None
    if language == 'de':
        text = f'CPU-Auslastung: {load} %'
        if cores:
            text += f' ({cores} Kerne'
            text += f', stärkster Kern {number(busiest, language, 0)} %)' if busiest is not None else ')'
        return text + '.'
    text = f'CPU load: {load} %'
    if cores:
        text += f' ({cores} cores'
        text += f', busiest core {number(busiest, language, 0)} %)' if busiest is not None else ')'
    return text + '.'


def _memory(metrics: SystemMetrics, language: str) -> str:
    percent = number(metrics.memory, language)
    if not metrics.memory_total:
        return f'Arbeitsspeicher: {percent} % belegt.' if language == 'de' else f'Memory: {percent} % used.'
    used, total = size(metrics.memory_used, language), size(metrics.memory_total, language)
    free = size(max(0, metrics.memory_total - metrics.memory_used), language)
    if language == 'de':
        return f'Arbeitsspeicher: {used} von {total} belegt ({percent} %), {free} frei.'
    return f'Memory: {used} of {total} used ({percent} %), {free} free.'


def _disk(metrics: SystemMetrics, language: str) -> str:
    percent = number(metrics.disk, language)
    where = f' ({metrics.disk_path})' if metrics.disk_path else ''
    if not metrics.disk_total:
        return (f'Festplatte{where}: {percent} % belegt.' if language == 'de'
                else f'Disk{where}: {percent} % used.')
    used, total = size(metrics.disk_used, language), size(metrics.disk_total, language)
    free = size(max(0, metrics.disk_total - metrics.disk_used), language)
    if language == 'de':
        return f'Festplatte{where}: {used} von {total} belegt ({percent} %), {free} frei.'
    return f'Disk{where}: {used} of {total} used ({percent} %), {free} free.'


def _gpu(metrics: SystemMetrics, language: str) -> str:
    if not metrics.gpus:
        reason = metrics.gpu_status or _na(language)
        if language == 'de':
            return f'Es konnte keine GPU ausgelesen werden ({reason}).'
        return f'No GPU could be read ({reason}).'
    return '\n'.join(_gpu_line(gpu, language) for gpu in metrics.gpus)


def _gpu_line(gpu: GpuReading, language: str) -> str:
    na = _na(language)

    def value(reading: float | None, unit: str, digits: int = 0) -> str:
        return na if reading is None else f'{number(reading, language, digits)} {unit}'

    if gpu.memory_used is None or gpu.memory_total is None:
        memory = na
    else:
        memory = f'{size(gpu.memory_used, language)} / {size(gpu.memory_total, language)}'
    if gpu.power is None:
        power = na
    elif gpu.power_limit is None:
        power = value(gpu.power, 'W')
    else:
        power = f'{value(gpu.power, "W")} / {value(gpu.power_limit, "W")}'
    label = f'GPU {gpu.index}' + (f' ({gpu.name})' if gpu.name else '')
    if language == 'de':
        return (f'{label}: Temperatur {value(gpu.temperature, "°C")}, Auslastung {value(gpu.utilization, "%")}, '
                f'Speicher {memory}, Leistung {power}, Lüfter {value(gpu.fan, "%")}.')
    return (f'{label}: temperature {value(gpu.temperature, "°C")}, load {value(gpu.utilization, "%")}, '
            f'memory {memory}, power {power}, fan {value(gpu.fan, "%")}.')


_LINES = {'cpu': _cpu, 'memory': _memory, 'disk': _disk, 'gpu': _gpu}
