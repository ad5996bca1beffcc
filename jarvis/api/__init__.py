"""The hub and the domain for scripts: JSON routes under /api/ and the /api/events WebSocket."""
from .routes import register

__all__ = ['register']
