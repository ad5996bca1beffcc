"""Plugins for tests, independent of which third-party plugins this environment has installed."""
from __future__ import annotations

from importlib.metadata import EntryPoint, distributions
from pathlib import Path

from jarvis.plugins.manager import ENTRY_POINT_GROUP


def entry_points_in(folder: Path) -> list[EntryPoint]:
    """The ``jarvis.plugins`` entry points of the packages in one folder (a site-packages of the test's own)."""
    return [entry_point for distribution in distributions(path=[str(folder)])
            for entry_point in distribution.entry_points if entry_point.group == ENTRY_POINT_GROUP]
