"""The machine's answers in words, German and English: short, with the numbers, and every number from a query.

``answer(text, queries, language)`` parses the question, runs the queries it needs and words the result;
None means it is not a question these answers know.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..units import binary_size
from .queries import (
    BITS_PER_WEIGHT,
    CONTEXT_OVERHEAD_BYTES,
    AlertsWindow,
    AnswerSpeed,
    BusyProcesses,
    Diagnosis,
    Finding,
    HistorySummary,
    MachineQueries,
    ModelFit,
    ProcessShare,
)
from .questions import Question, parse
from .timewords import TimeWindow, clock_time, describe, when

LIST_LIMIT = 3


@dataclass(frozen=True)
class Answer:
    """The words, what kind of question they answer, and the data they were computed from."""

    text: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def number(value: float, language: str, digits: int = 1) -> str:
    text = f'{value:.{digits}f}'
    return text.replace('.', ',') if language == 'de' else text


def size(value: float, language: str) -> str:
    """Bytes in the unit a person reads (binary units, as the System view shows them)."""
    amount, unit = binary_size(value)
    return f'{number(amount, language, 0 if unit == "B" else 1)} {unit}'


def _de(language: str) -> bool:
    return language == 'de'


async def answer(text: str, queries: MachineQueries, language: str) -> Answer | None:
    question = parse(text, queries.now())
    if question is None:
        return None
    handler = _HANDLERS.get(question.kind)
    return None if handler is None else await handler(question, queries, language)


# --- now -----------------------------------------------------------------------------------------

_NAMES = {
    'cpu': ('die CPU', 'the CPU'), 'memory': ('den Arbeitsspeicher', 'the memory'),
    'gpu': ('die GPU', 'the GPU'), 'gpu_memory': ('den GPU-Speicher', 'the GPU memory'),
}


def _share(process: ProcessShare, resource: str, language: str) -> str:
    label = f'{process.name} (PID {process.pid})'
    if resource == 'cpu':
        core = ' eines Kerns' if _de(language) else ' of a core'
        return f'{label} {number(process.cpu or 0.0, language)} %{core}'
    if resource == 'gpu_memory':
        return f'{label} {size(process.gpu_memory or 0, language)}'
    percent = f' ({number(process.memory_percent, language)} %)' if process.memory_percent is not None else ''
    return f'{label} {size(process.memory, language)}{percent}'


async def _processes_now(question: Question, queries: MachineQueries, language: str) -> Answer:
    resource = question.resource or 'cpu'
    wanted = 'gpu_memory' if resource in ('gpu', 'gpu_memory') else resource
    top = await queries.top_processes(wanted, LIST_LIMIT)  # type: ignore[arg-type]
    metrics = (await queries.reading()).metrics
    name = _NAMES[resource][0 if _de(language) else 1]
    if wanted == 'gpu_memory' and top.gpu_status != 'ok':
        text = (f'Welche Prozesse {name} nutzen, kann ich nicht sehen: {top.gpu_status}.' if _de(language)
                else f'I cannot see which processes use {name}: {top.gpu_status}.')
        return Answer(text, 'processes', top.to_dict())
    if resource == 'cpu':
        total = (f'{number(metrics.cpu, language)} % von {top.cpu_count} Kernen' if _de(language)
                 else f'{number(metrics.cpu, language)} % of {top.cpu_count} cores')
    elif resource == 'memory':
        total = (f'{size(metrics.memory_used, language)} von {size(metrics.memory_total, language)} belegt'
                 if _de(language) else
                 f'{size(metrics.memory_used, language)} of {size(metrics.memory_total, language)} used')
    else:
        used = sum(g.memory_used or 0 for g in metrics.gpus)
        capacity = sum(g.memory_total or 0 for g in metrics.gpus)
        load = '' if metrics.gpu is None else (f', Auslastung {number(metrics.gpu, language, 0)} %' if _de(language)
                                               else f', load {number(metrics.gpu, language, 0)} %')
        total = (f'{size(used, language)} von {size(capacity, language)} belegt{load}' if _de(language)
                 else f'{size(used, language)} of {size(capacity, language)} used{load}')
    if not top.processes:
        text = (f'Gerade nutzt kein Prozess {name} merklich ({total}).' if _de(language)
                else f'No process uses {name} noticeably right now ({total}).')
    else:
        listed = ', '.join(_share(p, wanted, language) for p in top.processes)
        text = (f'{name[0].upper()}{name[1:]} nutzen gerade ({total}): {listed}.' if _de(language)
                else f'Using {name} now ({total}): {listed}.')
    return Answer(text, 'processes', top.to_dict())


async def _status_now(question: Question, queries: MachineQueries, language: str) -> Answer:
    metrics = (await queries.reading()).metrics
    free = max(0, metrics.disk_total - metrics.disk_used)
    where = f' ({metrics.disk_path})' if metrics.disk_path else ''
    text = (f'Festplatte{where}: {size(free, language)} frei von {size(metrics.disk_total, language)} '
            f'({number(metrics.disk, language)} % belegt).' if _de(language) else
            f'Disk{where}: {size(free, language)} free of {size(metrics.disk_total, language)} '
            f'({number(metrics.disk, language)} % used).')
    return Answer(text, 'status', metrics.to_dict())


async def _temperature(question: Question, queries: MachineQueries, language: str) -> Answer:
    if question.window is not None:
        return await _history(question, queries, language)
    metrics = (await queries.reading()).metrics
    readings = [g for g in metrics.gpus if g.temperature is not None]
    if not readings:
        reason = metrics.gpu_status if metrics.gpu_status != 'ok' else 'n/a'
        text = (f'Ich kann keine Temperatur auslesen (GPU: {reason}); die CPU-Temperatur misst die App nicht.'
                if _de(language) else
                f'I cannot read a temperature (GPU: {reason}); the app does not measure the CPU temperature.')
        return Answer(text, 'temperature', metrics.to_dict())
    parts = [f'GPU {g.index}' + (f' ({g.name})' if g.name else '') + f': {number(g.temperature or 0, language, 0)} °C'
             for g in readings]
    hot = max(g.temperature or 0 for g in readings) >= 85
    tail = (' – heiß, sie drosselt womöglich.' if _de(language) else ' – hot, it may throttle.') if hot else '.'
    return Answer('; '.join(parts) + tail, 'temperature', metrics.to_dict())


def _finding(finding: Finding, language: str) -> str:
    de = _de(language)
    top = ', '.join(_share(p, 'cpu' if finding.kind == 'cpu' else 'memory', language) for p in finding.processes[:2])
    if finding.kind == 'cpu':
        head = (f'die CPU ist zu {number(finding.value, language)} % ausgelastet' if de
                else f'the CPU is {number(finding.value, language)} % busy')
        return head + (f' ({top})' if top else '')
    if finding.kind == 'memory':
        head = (f'der Arbeitsspeicher ist zu {number(finding.value, language)} % belegt' if de
                else f'memory is {number(finding.value, language)} % used')
        return head + (f' ({top})' if top else '')
    if finding.kind == 'swap':
        return (f'{size(finding.value, language)} sind ausgelagert (Swap)' if de
                else f'{size(finding.value, language)} of swap is in use')
    if finding.kind == 'disk':
        return (f'die Festplatte ist zu {number(finding.value, language)} % voll' if de
                else f'the disk is {number(finding.value, language)} % full')
    return (f'die GPU ist {number(finding.value, language, 0)} °C heiß' if de
            else f'the GPU is at {number(finding.value, language, 0)} °C')


def _calm(diagnosis: Diagnosis, language: str) -> str:
    metrics = diagnosis.metrics
    busiest = (', '.join(_share(p, 'cpu', language) for p in diagnosis.top_cpu[:2]) or '–')
    if _de(language):
        return (f'Nichts fällt auf: CPU {number(metrics.cpu, language)} %, Arbeitsspeicher '
                f'{number(metrics.memory, language)} % belegt, Swap {size(metrics.swap_used, language)}, Festplatte '
                f'{number(metrics.disk, language)} % voll. Am meisten CPU: {busiest}.')
    return (f'Nothing stands out: CPU {number(metrics.cpu, language)} %, memory {number(metrics.memory, language)} % '
            f'used, swap {size(metrics.swap_used, language)}, disk {number(metrics.disk, language)} % full. '
            f'Busiest: {busiest}.')


async def _slow(question: Question, queries: MachineQueries, language: str) -> Answer:
    diagnosis = await queries.diagnose()
    if not diagnosis.findings:
        return Answer(_calm(diagnosis, language), 'slow', diagnosis.to_dict())
    reasons = '; '.join(_finding(f, language) for f in diagnosis.findings)
    text = f'Mögliche Gründe: {reasons}.' if _de(language) else f'Likely reasons: {reasons}.'
    return Answer(text, 'slow', diagnosis.to_dict())


# --- the past ------------------------------------------------------------------------------------

_SERIES = {
    'cpu': ('CPU-Auslastung', 'CPU load', '%'), 'memory': ('Arbeitsspeicher', 'Memory', '%'),
    'disk': ('Festplatte', 'Disk', '%'), 'gpu': ('GPU-Auslastung', 'GPU load', '%'),
    'gpu_memory': ('GPU-Speicher', 'GPU memory', '%'), 'gpu_temperature': ('GPU-Temperatur', 'GPU temperature', '°C'),
}


def _value(value: float | None, unit: str, language: str) -> str:
    return '–' if value is None else f'{number(value, language, 0 if unit == "°C" else 1)} {unit}'


def _nothing_recorded(window: TimeWindow, now: float, language: str) -> str:
    span = describe(window, now, language)
    if _de(language):
        return _capital(f'{span if window.kind == "at" else "für " + span} ist nichts aufgezeichnet '
                        f'(die App lief da nicht).')
    return f'Nothing was recorded {span if window.kind == "at" else "for " + span} (the app was not running then).'


def _no_series(summary: HistorySummary, window: TimeWindow, now: float, language: str) -> str:
    label_de, label_en, _ = _SERIES[summary.metric]
    span = describe(window, now, language)
    return (f'{label_de}: {span} gibt es keine Messwerte (keine GPU lesbar).' if _de(language)
            else f'{label_en}: no readings {span if window.kind == "at" else "for " + span} (no GPU readable).')


def _summary_text(summary: HistorySummary, window: TimeWindow, now: float, language: str, *, peak_first: bool) -> str:
    label_de, label_en, unit = _SERIES[summary.metric]
    span = describe(window, now, language)
    peak_at = when(summary.peak_at or 0, now, language)
    if peak_first:
        if _de(language):
            return (f'{label_de} war am höchsten um {peak_at}: {_value(summary.peak, unit, language)} '
                    f'(Mittel {_value(summary.mean, unit, language)}; angesehen: {span}).')
        return (f'{label_en} was highest at {peak_at}: {_value(summary.peak, unit, language)} '
                f'(mean {_value(summary.mean, unit, language)}; looked at {span}).')
    if _de(language):
        return (f'{label_de} {span}: höchstens {_value(summary.peak, unit, language)} (um {peak_at}), '
                f'im Mittel {_value(summary.mean, unit, language)}, mindestens {_value(summary.low, unit, language)}.')
    return (f'{label_en} {span}: highest {_value(summary.peak, unit, language)} (at {peak_at}), '
            f'mean {_value(summary.mean, unit, language)}, lowest {_value(summary.low, unit, language)}.')


async def _history(question: Question, queries: MachineQueries, language: str, *, peak_first: bool = False) -> Answer:
    now = queries.now()
    window = question.window or _default_window(question, now)
    metric = question.resource or 'cpu'
    summary = await queries.history_summary(metric, window.start, window.end)  # type: ignore[arg-type]
    if not summary.recorded:
        return Answer(_nothing_recorded(window, now, language), 'history', summary.to_dict())
    if not summary.points:
        return Answer(_no_series(summary, window, now, language), 'history', summary.to_dict())
    return Answer(_summary_text(summary, window, now, language, peak_first=peak_first), 'history', summary.to_dict())


def _default_window(question: Question, now: float) -> TimeWindow:
    """"When was memory highest?" without a time: the last 24 hours."""
    return TimeWindow(now - 86400.0, now, 'last')


async def _peak(question: Question, queries: MachineQueries, language: str) -> Answer:
    return await _history(question, queries, language, peak_first=True)


def _recorded(share: Any, resource: str, now: float, language: str) -> str:
    label = f'{share.name} (PID {share.pid})'
    at = when(share.peak_at, now, language)
    if resource == 'cpu':
        amount = f'{number(share.peak, language)} %' + (' eines Kerns' if _de(language) else ' of a core')
    else:
        amount = size(share.peak, language)
    return f'{label} bis {amount} (um {at})' if _de(language) else f'{label} up to {amount} (at {at})'


async def _processes_then(question: Question, queries: MachineQueries, language: str) -> Answer:
    assert question.window is not None
    now = queries.now()
    resource = question.resource or 'cpu'
    wanted = 'gpu_memory' if resource in ('gpu', 'gpu_memory') else resource
    busy: BusyProcesses = await queries.busy_between(wanted, question.window.start, question.window.end,  # type: ignore[arg-type]
                                                     LIST_LIMIT)
    if not busy.minutes:
        return Answer(_nothing_recorded(question.window, now, language), 'processes_then', busy.to_dict())
    span = describe(question.window, now, language)
    name = _NAMES[wanted][0 if _de(language) else 1]
    if not busy.processes:
        text = (f'{span}: kein Prozess hat {name} merklich genutzt ({busy.minutes} aufgezeichnete Minuten).'
                if _de(language) else
                f'{span}: no process used {name} noticeably ({busy.minutes} recorded minutes).')
        return Answer(_capital(text), 'processes_then', busy.to_dict())
    listed = ', '.join(_recorded(p, wanted, now, language) for p in busy.processes)
    minutes = (f'{busy.minutes} aufgezeichnete Minute' + ('n' if busy.minutes != 1 else '') if _de(language)
               else f'{busy.minutes} recorded minute' + ('s' if busy.minutes != 1 else ''))
    text = (f'{span} ({minutes}) haben {name} am meisten genutzt: {listed}.' if _de(language)
            else f'{span} ({minutes}), {name} was used most by: {listed}.')
    return Answer(_capital(text), 'processes_then', busy.to_dict())


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


async def _processes(question: Question, queries: MachineQueries, language: str) -> Answer:
    if question.resource == 'disk':  # the history keeps no disk use per process: how full it was, or is
        return await _status(question, queries, language)
    if question.window is None:
        return await _processes_now(question, queries, language)
    return await _processes_then(question, queries, language)


async def _status(question: Question, queries: MachineQueries, language: str) -> Answer:
    if question.window is None:
        return await _status_now(question, queries, language)
    return await _history(question, queries, language)


def _alert_line(alert: Any, now: float, language: str) -> str:
    start = when(alert.started_at, now, language)
    if alert.ended_at is None:
        period = f'seit {start}, hält noch an' if _de(language) else f'since {start}, still firing'
    else:
        period = f'{start}–{clock_time(alert.ended_at)}'
    unit = '°C' if alert.metric == 'gpu_temperature' else '%'
    peak = f'Spitze {_value(alert.peak, unit, language)}' if _de(language) else f'peak {_value(alert.peak, unit, language)}'
    return f'{alert.summary} ({alert.severity}, {period}, {peak})'


async def _alerts(question: Question, queries: MachineQueries, language: str) -> Answer:
    now = queries.now()
    window = question.window or _today(now)
    found: AlertsWindow = await queries.alerts_between(window.start, window.end)
    span = describe(window, now, language)
    if not found.alerts:
        text = f'{span}: kein Alarm.' if _de(language) else f'{span}: no alert fired.'
        return Answer(_capital(text), 'alerts', found.to_dict())
    lines = '; '.join(_alert_line(a, now, language) for a in found.alerts)
    count = len(found.alerts)
    text = (f'{span}: {count} Alarm{"e" if count != 1 else ""} – {lines}.' if _de(language)
            else f'{span}: {count} alert{"s" if count != 1 else ""} – {lines}.')
    return Answer(_capital(text), 'alerts', found.to_dict())


def _today(now: float) -> TimeWindow:
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return TimeWindow(midnight.timestamp(), now, 'day')


# --- models --------------------------------------------------------------------------------------

def _holders(fit: ModelFit, language: str) -> str:
    verb = ' belegt ' if _de(language) else ' holds '
    return ', '.join(f'{p.name} (PID {p.pid}){verb}{size(p.memory, language)}' for p in fit.holders)


async def _model_fit(question: Question, queries: MachineQueries, language: str) -> Answer:
    assert question.params_b is not None
    fit = await queries.model_fit(question.params_b)
    de = _de(language)
    params = number(fit.params_b, language, 0 if fit.params_b == int(fit.params_b) else 1)
    bits = number(BITS_PER_WEIGHT[fit.quantization], language, 2)
    overhead = size(CONTEXT_OVERHEAD_BYTES, language)
    need = (f'Ein {params}B-Modell braucht bei {fit.quantization} (etwa {bits} Bit je Gewicht) ungefähr '
            f'{size(fit.needed_bytes, language)}: {size(fit.weights_bytes, language)} Gewichte und etwa {overhead} '
            f'für einen 4K-Kontext.' if de else
            f'A {params}B model needs about {size(fit.needed_bytes, language)} at {fit.quantization} (about {bits} bits '
            f'a weight): {size(fit.weights_bytes, language)} of weights and about {overhead} for a 4K context.')
    ram = '–' if fit.ram_free_bytes is None else size(fit.ram_free_bytes, language)
    vram = None if fit.vram_free_bytes is None else size(fit.vram_free_bytes, language)
    free = (f' Frei sind {ram} RAM' + (f' und {vram} GPU-Speicher' if vram else ' (keine GPU lesbar)') + '.' if de
            else f' Free now: {ram} of RAM' + (f' and {vram} of GPU memory' if vram else ' (no GPU readable)') + '.')
    if fit.fits_vram:
        verdict = ' Es passt in den GPU-Speicher (am schnellsten).' if de else ' It fits in GPU memory (fastest).'
    elif fit.fits_ram:
        verdict = (' Es passt in den RAM und läuft dann auf der CPU (langsamer als auf einer GPU).' if de
                   else ' It fits in RAM and then runs on the CPU (slower than on a GPU).')
    elif fit.ram_free_bytes is None:
        verdict = ' Wie viel RAM frei ist, kann ich nicht lesen.' if de else ' I cannot read how much RAM is free.'
    else:
        more = size(fit.shortfall_bytes, language)
        holders = _holders(fit, language)
        verdict = (f' Es passt nicht: es braucht etwa {more} mehr freien RAM; {holders}.' if de
                   else f' It does not fit: it needs about {more} more free RAM; {holders}.')
        if fit.loaded is not None and fit.loaded.size_bytes:
            verdict += (f' Das geladene Modell {fit.loaded.name} belegt etwa {size(fit.loaded.size_bytes, language)}.'
                        if de else
                        f' The loaded model {fit.loaded.name} holds about {size(fit.loaded.size_bytes, language)}.')
    return Answer(need + free + verdict, 'model_fit', fit.to_dict())


async def _answer_slow(question: Question, queries: MachineQueries, language: str) -> Answer:
    speed: AnswerSpeed = await queries.answer_speed()
    de = _de(language)
    parts: list[str] = []
    if speed.tokens_per_s is None:
        parts.append('Es gibt noch keine Modellantwort, deren Tempo ich messen könnte.' if de
                     else 'There is no model answer yet whose speed I could measure.')
    else:
        first = '' if speed.first_token_s is None else (
            f', das erste Token nach {number(speed.first_token_s, language)} s' if de
            else f', the first token after {number(speed.first_token_s, language)} s')
        parts.append(f'Die letzte Antwort ({speed.answered_by}) kam mit {number(speed.tokens_per_s, language)} '
                     f'Token/s{first}.' if de else
                     f'The last answer ({speed.answered_by}) came at {number(speed.tokens_per_s, language)} '
                     f'tokens/s{first}.')
    if speed.model is not None:
        where = ('' if speed.on_gpu else (' und läuft auf der CPU (keine GPU lesbar)' if de
                                          else ' and runs on the CPU (no GPU readable)'))
        model_size = '' if not speed.model.size_bytes else (
            f' ({size(speed.model.size_bytes, language)})')
        parts.append(f'Geladen ist {speed.model.name}{model_size}{where}.' if de
                     else f'The loaded model is {speed.model.name}{model_size}{where}.')
    else:
        parts.append('Gerade ist kein Modell geladen.' if de else 'No model is loaded right now.')
    diagnosis = speed.diagnosis
    if diagnosis.findings:
        reasons = '; '.join(_finding(f, language) for f in diagnosis.findings)
        parts.append(f'Was bremst: {reasons}.' if de else f'What slows it down: {reasons}.')
    else:
        metrics = diagnosis.metrics
        parts.append(f'Die Maschine bremst nicht: CPU {number(metrics.cpu, language)} %, Arbeitsspeicher '
                     f'{number(metrics.memory, language)} % belegt.' if de else
                     f'The machine is not in the way: CPU {number(metrics.cpu, language)} %, memory '
                     f'{number(metrics.memory, language)} % used.')
    return Answer(' '.join(parts), 'answer_slow', speed.to_dict())


_HANDLERS = {
    'processes': _processes, 'status': _status, 'temperature': _temperature, 'peak': _peak, 'alerts': _alerts,
    'slow': _slow, 'model_fit': _model_fit, 'answer_slow': _answer_slow,
}

__all__ = ['Answer', 'answer', 'number', 'size']
