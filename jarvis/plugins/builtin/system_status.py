"""System status from a fresh metrics sample: CPU load, memory, disk space and GPU readings."""
from __future__ import annotations

import logging
import re
import time

from ...events import GpuReading, SystemMetrics
from ...units import binary_size
from ..base import Plugin, PluginContext
from ..language import language_by_vocabulary

_CPU = re.compile(r'\b(?:cpu|prozessor|processor)\b', re.IGNORECASE)
_MEMORY = re.compile(r'\b(?:memory|ram|arbeitsspeicher|speicher)\b', re.IGNORECASE)
_DISK = re.compile(r'\b(?:disk|drive|hard drive|festplatte|platte|ssd|laufwerk|storage|speicherplatz|platz)\b',
                   re.IGNORECASE)
_GPU = re.compile(r'\b(?:gpus?|grafikkarte|graphics card|vram)\b', re.IGNORECASE)
_MEMORY_ITSELF = re.compile(r'\b(?:ram|arbeitsspeicher|memory)\b', re.IGNORECASE)
_OVERVIEW = re.compile(r'\bsystem ?status\b|\bsystemauslastung\b|\bsystem (?:load|usage)\b', re.IGNORECASE)
_GERMAN = re.compile(r'\b(?:wie|ist|die|der|meine?|auslastung|ausgelastet|belegt|frei|speicher|arbeitsspeicher|'
                     r'festplatte|platz|temperatur|grafikkarte|prozessor|laufwerk|speicherplatz)\b', re.IGNORECASE)
_ENGLISH = re.compile(r'\b(?:how|what|is|my|the|load|usage|busy|free|memory|disk|space|temperature|used)\b',
                      re.IGNORECASE)

_LOAD_WORDS = r'(?:load|usage|busy|used|utili[sz]ation|auslastung|ausgelastet|belastet|last|beschäftigt|status)'
_FREE_WORDS = r'(?:free|used|usage|available|left|full|frei|belegt|verfügbar|übrig|voll|auslastung|ausgelastet|' \
              r'how much|wie ?viel|status)'

log = logging.getLogger(__name__)

STALE_AFTER_S = 60.0  # should a fresh reading fail, the answer says how old the one it gives is
MAX_QUESTION_CHARS = 300  # a long message that mentions the CPU in passing is for the model


class SystemStatusPlugin(Plugin):
    name = 'System status'
    description = 'Answers questions about CPU load, memory, disk space and the GPU from the live system monitor.'
    version = '1.0.0'
    max_match_chars = MAX_QUESTION_CHARS
    patterns = [
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

    async def handle(self, message: str, context: PluginContext) -> str | None:
        language = _language(message, context)
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


def number(value: float, language: str, digits: int = 1) -> str:
    text = f'{value:.{digits}f}'
    return text.replace('.', ',') if language == 'de' else text


def size(value: int, language: str) -> str:
    """Bytes in the unit a person reads (binary units, as the System view shows them)."""
    amount, unit = binary_size(value)
    return f'{number(amount, language, 0 if unit == "B" else 1)} {unit}'


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
