"""The app itself: a second start of J.A.R.V.I.S. asks the running one to show its window."""
from __future__ import annotations

from fastapi import APIRouter

from ..events import WindowRequest
from ..hub import Hub
from .schemas import ShowAppRequest


def add_routes(router: APIRouter, hub: Hub) -> None:
    @router.post('/api/app/show', tags=['app'])
    async def show_app(request: ShowAppRequest) -> dict:
        """Bring the app's native window to the front (a second start of the app calls this and exits).
        Answers how many windows are connected and how many of them are visible."""
        del request  # nothing to choose yet; a JSON body keeps the route's rules those of every other
        hub.publish(WindowRequest('show'))
        return {'windows': hub.viewer_count, 'visible': hub.visible_count}
