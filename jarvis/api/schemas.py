"""Request bodies of the /api/ routes: what the OpenAPI schema publishes and FastAPI validates.

Names and ids are refused when they hold a lone surrogate (``"\\ud800"``): such text cannot be
stored or compared as UTF-8. A chat message is not refused for it; the assistant marks it.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    model_validator,
)

from ..models.servers import MAX_KEY_CHARS, MAX_URL_CHARS, NAME_PATTERN
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
ConversationTitle = Annotated[str, Field(min_length=1, max_length=120), BeforeValidator(_valid_unicode)]
# parameters of the URL: FastAPI reads their rules from its own Path and Query, not from Field
ConversationIdInPath = Annotated[str, Path(min_length=1, max_length=64, description='A conversation id.'),
                                 BeforeValidator(_valid_unicode)]
SearchQuery = Annotated[str, Query(min_length=1, max_length=200,
                                   description='Words to find (each also as the start of a longer word).'),
                        BeforeValidator(_valid_unicode)]


# GET /api/system/processes and /api/system/history
ProcessSort = Literal['cpu', 'memory', 'gpu_memory']
HistoryRangeName = Literal['5m', '1h', '24h', '7d', '30d']
# Unix seconds from 1970 to the year 5138: enough for any clock, and never NaN or infinite
UnixTime = Annotated[float, Field(ge=0, le=1e11, allow_inf_nan=False)]


class ChatRequest(BaseModel):
    message: str = Field(description='What to ask; at most 32,000 characters.', examples=['What time is it?'])
    conversation_id: ConversationId | None = Field(
        None, description='The conversation to answer in (404 when there is none); default: the one used last '
                          '(the one with the newest message; a new one when there is none).')


class ConversationChange(BaseModel):
    title: ConversationTitle | None = Field(None, description='A new name.', examples=['Trip to Lisbon'])
    pinned: StrictBool | None = Field(None, description='Pinned conversations are listed first.')
    system_prompt: StrictStr | None = Field(
        None, max_length=4000, description='Its own system prompt; "" goes back to the default from the settings.')
    model: StrictStr | None = Field(
        None, max_length=300, description='"source:name" of the model it answers with (as /api/models lists '
        'them); "" goes back to the chat\'s model.', examples=['local:gemma-3-270m-q4_k_m'])

    @model_validator(mode='after')
    def _something_to_change(self) -> ConversationChange:
        if all(value is None for value in (self.title, self.pinned, self.system_prompt, self.model)):
            raise ValueError('say what to change: "title", "pinned", "system_prompt" and/or "model"')
        return self


# a server's name: also the path part of DELETE /api/models/servers/{name}
ServerName = Annotated[str, Field(pattern=NAME_PATTERN, description='1 to 40 letters, digits, ".", "_" or "-".',
                                  examples=['gpu-box'])]
ServerNameInPath = Annotated[str, Path(pattern=NAME_PATTERN, description='The name of a server added before.',
                                       examples=['gpu-box'])]
ModelSource = Annotated[str, Field(pattern=r'^(local|ollama|server:' + NAME_PATTERN.strip('^$') + ')$',
                                   examples=['local', 'ollama', 'server:gpu-box'])]


class LoadModelRequest(BaseModel):
    model: ModelName = Field(examples=['gemma-3-270m-q4_k_m'])
    source: ModelSource | None = Field(
        None, description='Where the model is: "local", "ollama", or "server:<name>" for a model of an '
                          'OpenAI-compatible server added before; default: "ollama" for a name with a tag '
                          '("llama3:8b"), else "local".')


class AddServerRequest(BaseModel):
    url: Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS), BeforeValidator(_valid_unicode)] = Field(
        description='The OpenAI-compatible API\'s base address (http or https; no path means /v1).',
        examples=['http://127.0.0.1:9/v1'])
    api_key: Annotated[str, Field(max_length=MAX_KEY_CHARS), BeforeValidator(_valid_unicode)] | None = Field(
        None, description='Sent as "Authorization: Bearer"; kept in a file only the user can read and never '
                          'shown again.')
    name: ServerName | None = Field(None, description='Default: the host name. A server of that name is replaced.')


class TogglePluginRequest(BaseModel):
    plugin: PluginName = Field(examples=['Wikipedia'])
    enabled: StrictBool


class PluginSettingsRequest(BaseModel):
    plugin: PluginName = Field(examples=['Wikipedia'])
    settings: Annotated[dict[str, Any], AfterValidator(_valid_keys)] = Field(examples=[{'sentences': 2}])


RULE_ID_MAX = 40
RULE_ID_PATTERN = r'^[a-z0-9_-]+$'
AlertRuleId = Annotated[str, Field(min_length=1, max_length=RULE_ID_MAX, pattern=RULE_ID_PATTERN,
                                   description='1 to 40 characters of a-z, 0-9, "-" and "_".',
                                   examples=['cpu-high'])]
AlertMetric = Literal['cpu', 'memory', 'swap', 'disk', 'gpu_utilization', 'gpu_memory', 'gpu_temperature']


class AlertRuleRequest(BaseModel):
    """A rule to add, or the fields of one to change (the others keep their values)."""

    id: AlertRuleId | None = Field(None, description='The rule to add or change; without one, a new rule is added.')
    metric: AlertMetric | None = Field(None, description='Required for a new rule.')
    threshold: float | None = Field(None, allow_inf_nan=False, examples=[90],
                                    description='Fires above this: percent, or °C for gpu_temperature. Required '
                                                'for a new rule.')
    duration_s: float | None = Field(None, ge=0, le=86_400, description='How long it must hold, in seconds.')
    cooldown_s: float | None = Field(None, ge=0, le=604_800,
                                     description='How long the rule stays quiet after an alert ended, in seconds.')
    severity: Literal['warning', 'critical'] | None = None
    enabled: StrictBool | None = None


class ShowAppRequest(BaseModel):
    """``{}``: the running app shows its window."""

    model_config = ConfigDict(extra='forbid')
