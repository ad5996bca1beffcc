"""Request bodies of the /api/ routes: what the OpenAPI schema publishes and FastAPI validates.

Names and ids are refused when they hold a lone surrogate (``"\\ud800"``): such text cannot be
stored or compared as UTF-8. A chat message is not refused for it; the assistant marks it.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StrictBool

from ..text import has_lone_surrogate


def _valid_unicode(value: Any) -> Any:
    if isinstance(value, str) and has_lone_surrogate(value):
        raise ValueError('must be valid Unicode text (it holds a lone surrogate)')
    return value


def _valid_keys(values: dict[str, Any]) -> dict[str, Any]:
    for key in values:
        _valid_unicode(key)
    return values


# checked before pydantic's own string rules, whose message for a lone surrogate says less
ConversationId = Annotated[str, Field(min_length=1, max_length=64), BeforeValidator(_valid_unicode)]
ModelName = Annotated[str, Field(min_length=1, max_length=200), BeforeValidator(_valid_unicode)]
PluginName = Annotated[str, Field(min_length=1, max_length=100), BeforeValidator(_valid_unicode)]


# GET /api/system/processes and /api/system/history
ProcessSort = Literal['cpu', 'memory', 'gpu_memory']
HistoryRangeName = Literal['5m', '1h', '24h', '7d', '30d']
# Unix seconds from 1970 to the year 5138: enough for any clock, and never NaN or infinite
UnixTime = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]


class ChatRequest(BaseModel):
    message: str = Field(description='What to ask; at most 32,000 characters.', examples=['What time is it?'])
    conversation_id: ConversationId | None = Field(
        None, description='The conversation to answer in (404 when there is none); default: the active one.')


class LoadModelRequest(BaseModel):
    model: ModelName = Field(examples=['gemma-3-270m-q4_k_m'])
    source: Literal['local', 'ollama'] | None = Field(
        None, description='Where the model is; default: "ollama" for a name with a tag ("llama3:8b"), else "local".')


class TogglePluginRequest(BaseModel):
    plugin: PluginName = Field(examples=['Wikipedia'])
    enabled: StrictBool


class PluginSettingsRequest(BaseModel):
    plugin: PluginName = Field(examples=['Wikipedia'])
    settings: Annotated[dict[str, Any], AfterValidator(_valid_keys)] = Field(examples=[{'sentences': 2}])
