"""What a question about the machine asks: which kind of answer, about which resource, and when.

Only words decide; every pattern is bounded (the plugin offers at most a few hundred characters).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .timewords import TimeWindow, find_window

Kind = Literal['processes', 'status', 'temperature', 'peak', 'alerts', 'slow', 'model_fit', 'answer_slow']

_CPU = re.compile(r'\b(?:cpu|cpus|prozessor|processor|cores?|kerne?)\b', re.IGNORECASE)
_GPU = re.compile(r'\b(?:gpus?|grafikkarte|graphics\s{1,3}card|video\s{1,3}card)\b', re.IGNORECASE)
_GPU_MEMORY = re.compile(r'\b(?:vram|grafikspeicher|gpu[\s-]{1,3}(?:memory|speicher|ram)|video\s{1,3}memory)\b',
                         re.IGNORECASE)
_MEMORY = re.compile(r'\b(?:memory|ram|arbeitsspeicher|speicher|hauptspeicher)\b', re.IGNORECASE)
_DISK = re.compile(r'\b(?:disk|drive|festplatte|platte|ssd|laufwerk|speicherplatz|disk\s{1,3}space)\b', re.IGNORECASE)
_HOT = re.compile(r'\b(?:hot|hottest|warm|temperatures?|temp|heiß|heiss|heißesten|temperaturen?)\b|\bgpu-temperatur',
                  re.IGNORECASE)
_USING = re.compile(
    r'\b(?:using|uses|use|eating|eats|hogging|hogs|consuming|consumes|holding|holds|taking|takes|occupying'
    r'|occupies|busy\s{1,3}with|belegt|belegen|belegte|verbraucht|verbrauchen|verbrauchte|nutzt|nutzen|nutzte'
    r'|benutzt|genutzt|belastet|belastete|frisst|fressen|beansprucht|braucht|brauchen|brauchte|auslastet|ausgelastet\s{1,3}hat)\b',
    re.IGNORECASE)
_WHO = re.compile(r'\b(?:what|which|who|was|wer|welche[rsmn]?|top|meisten|most)\b', re.IGNORECASE)
_PROCESSES = re.compile(r'\b(?:process(?:es)?|programs?|apps?|applications?|prozesse?|programme?|anwendungen?)\b',
                        re.IGNORECASE)
_WHEN_PEAK = re.compile(r'\b(?:when|wann)\b', re.IGNORECASE)
_PEAK = re.compile(r'\b(?:highest|peak|peaked|most|max(?:imum)?|busiest|fullest|hottest|höchste[nrs]?|am\s{1,3}'
                   r'(?:meisten|vollsten|heißesten|stärksten)|spitze|maximal|maximum)\b', re.IGNORECASE)
_ALERTS = re.compile(r'\b(?:alerts?|alarms?|alarme?|warnungen|warnmeldungen)\b', re.IGNORECASE)
_SLOW = re.compile(r'\b(?:slow|slowly|sluggish|laggy|lagging|langsam|träge|lahm|ruckelt|hängt|zäh)\b', re.IGNORECASE)
_ANSWER = re.compile(r'\b(?:answers?|responses?|repl(?:y|ies)|antwort(?:en)?|model|modell|llm|tokens?|generation'
                     r'|generierung|chat)\b', re.IGNORECASE)
# "7B", "13 b", "1.5B", "70 billion", "8 Mrd."; not "1024b" of a size in bytes within a longer number
_MODEL_SIZE = re.compile(r'(?<![\w.,])(?P<size>\d{1,4}(?:[.,]\d{1,2})?)\s{0,2}'
                         r'(?:b|bn|billion|milliarden|mrd)(?![\w])', re.IGNORECASE)
_FIT = re.compile(r'\b(?:run|runs|fit|fits|load|handle|use|host|laufen|läuft|lauffähig|passt|passen|laden'
                  r'|nutzen|schafft|schaffen|betreiben|ausführen)\b', re.IGNORECASE)


@dataclass(frozen=True)
class Question:
    kind: Kind
    resource: str | None  # 'cpu', 'memory', 'gpu', 'gpu_memory', 'disk', 'gpu_temperature'
    window: TimeWindow | None  # None: now
    params_b: float | None = None  # a model's size in billions of parameters


def resource_of(text: str) -> str | None:
    if _GPU_MEMORY.search(text):
        return 'gpu_memory'
    gpu = bool(_GPU.search(text))
    if gpu and _MEMORY.search(text):
        return 'gpu_memory'
    if _CPU.search(text):
        return 'cpu'
    if _DISK.search(text) and not _MEMORY_ITSELF.search(text):
        return 'disk'
    if _MEMORY.search(text):
        return 'memory'
    if gpu:
        return 'gpu'
    return None


_MEMORY_ITSELF = re.compile(r'\b(?:ram|arbeitsspeicher|memory)\b', re.IGNORECASE)


def parse(text: str, now: float) -> Question | None:
    """The question in ``text``; None when it is not one these answers know (the plugin's old lines answer)."""
    size = _MODEL_SIZE.search(text)
    if size is not None and _FIT.search(text):
        return Question('model_fit', None, None, float(size.group('size').replace(',', '.')))
    if _SLOW.search(text):
        if _ANSWER.search(text):
            return Question('answer_slow', None, None)
        return Question('slow', None, None)
    window = find_window(text, now)
    if _ALERTS.search(text):
        return Question('alerts', None, window)
    resource = resource_of(text)
    if _HOT.search(text):
        return Question('temperature', 'gpu_temperature', window)
    if resource is None:
        if _WHO.search(text) and _PROCESSES.search(text):  # "which processes are running?": by CPU
            return Question('processes', 'cpu', window)
        return None
    if _WHEN_PEAK.search(text) and _PEAK.search(text):
        return Question('peak', resource, window)
    if _WHO.search(text) and (_USING.search(text) or _PROCESSES.search(text)):
        return Question('processes', resource, window)
    if window is not None:
        return Question('status', resource, window)
    return None
