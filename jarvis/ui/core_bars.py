"""Per-core CPU bars, drawn by the browser from one list: cheap however many cores there are."""
from __future__ import annotations

from nicegui import ui

from . import format as fmt


class CoreBars(ui.element, component='core_bars.js'):
    def __init__(self) -> None:
        super().__init__()
        self.props['cores'] = []

    @property
    def values(self) -> list[float]:
        return [value for value, _ in self.props['cores']]

    def show(self, per_core: list[float]) -> None:
        cores = [[round(value, 1), fmt.level_color(value)] for value in per_core]
        if cores != self.props['cores']:
            self.props['cores'] = cores  # props are observed: the change goes out by itself
