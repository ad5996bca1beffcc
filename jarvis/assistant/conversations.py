"""Conversations and their messages in SQLite; every message is written as it completes.

The public methods are async: each runs its SQL in a worker thread (``Database.run``), so no
caller ever blocks the event loop or touches the database itself.
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..events import ChatMessage
from ..storage import Database

DEFAULT_TITLE = 'New conversation'
MAX_TITLE_CHARS = 120


class ConversationNotFound(LookupError):
    """There is no conversation with that id (any more); the text says so."""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float
    message_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {'id': self.id, 'title': self.title, 'created_at': self.created_at, 'updated_at': self.updated_at,
                'messages': self.message_count}


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- the async interface ----------------------------------------------------------------

    async def create(self, title: str = DEFAULT_TITLE) -> Conversation:
        return await self._db.run(self._create, title)

    async def get(self, conversation_id: str) -> Conversation | None:
        return await self._db.run(self._get, conversation_id)

    async def require(self, conversation_id: str) -> Conversation:
        conversation = await self.get(conversation_id)
        if conversation is None:
            raise ConversationNotFound(f'There is no conversation with the id "{conversation_id[:64]}".')
        return conversation

    async def list(self) -> list[Conversation]:
        return await self._db.run(self._list)

    async def rename(self, conversation_id: str, title: str) -> Conversation:
        return await self._db.run(self._rename, conversation_id, title)

    async def delete(self, conversation_id: str) -> bool:
        return await self._db.run(self._delete, conversation_id)

    async def save_message(self, message: ChatMessage) -> None:
        await self._db.run(self._save_message, message)

    async def messages(self, conversation_id: str) -> list[ChatMessage]:
        return await self._db.run(self._messages, conversation_id)

    async def last_messages(self, limit: int, conversation_id: str | None = None) -> list[ChatMessage]:
        return await self._db.run(self._last_messages, limit, conversation_id)

    async def export(self, conversation_id: str, kind: str) -> str:
        """The conversation as ``md`` (Markdown) or ``json`` (the format ``import_json`` reads)."""
        return await self._db.run(self._export_markdown if kind == 'md' else self._export_json, conversation_id)

    async def import_json(self, text: str) -> Conversation:
        return await self._db.run(self._import_json, text)

    # --- conversations ----------------------------------------------------------------------

    def _create(self, title: str = DEFAULT_TITLE) -> Conversation:
        now = time.time()
        conversation = Conversation(id=uuid.uuid4().hex, title=clean_title(title), created_at=now, updated_at=now)
        self._db.execute('INSERT INTO conversations(id, title, created_at, updated_at) VALUES(?, ?, ?, ?)',
                        (conversation.id, conversation.title, now, now))
        return conversation

    def _get(self, conversation_id: str) -> Conversation | None:
        row = self._db.query_one(
            'SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count '
            'FROM conversations c WHERE c.id = ?', (conversation_id,))
        return _conversation(row) if row else None

    def _list(self) -> list[Conversation]:
        """Newest first."""
        rows = self._db.query(
            'SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count '
            'FROM conversations c ORDER BY c.updated_at DESC, c.created_at DESC')
        return [_conversation(row) for row in rows]

    def _rename(self, conversation_id: str, title: str) -> Conversation:
        cleaned = clean_title(title)
        if not cleaned:
            raise ValueError('A conversation needs a name.')
        cursor = self._db.execute('UPDATE conversations SET title = ? WHERE id = ?', (cleaned, conversation_id))
        conversation = self._get(conversation_id) if cursor.rowcount else None
        if conversation is None:
            raise ConversationNotFound(f'There is no conversation with the id "{conversation_id[:64]}".')
        return conversation

    def _delete(self, conversation_id: str) -> bool:
        return self._db.execute('DELETE FROM conversations WHERE id = ?', (conversation_id,)).rowcount > 0

    # --- messages ---------------------------------------------------------------------------

    def _save_message(self, message: ChatMessage) -> None:
        """Insert or replace a complete message and touch its conversation."""
        try:
            self._db.execute(
                'INSERT INTO messages(id, conversation_id, role, text, status, created_at, source, model, '
                'first_token_s, tokens_per_s, tokens) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) '
                'ON CONFLICT(id) DO UPDATE SET text = excluded.text, status = excluded.status, '
                'source = excluded.source, model = excluded.model, first_token_s = excluded.first_token_s, '
                'tokens_per_s = excluded.tokens_per_s, tokens = excluded.tokens',
                (message.id, message.conversation_id, message.role, message.text, message.status, message.created_at,
                 message.source, message.model, message.first_token_s, message.tokens_per_s, message.tokens))
        except sqlite3.IntegrityError as error:  # the conversation was deleted meanwhile (foreign key)
            raise ConversationNotFound(f'The conversation "{message.conversation_id[:64]}" no longer exists.') \
                from error
        self._db.execute('UPDATE conversations SET updated_at = ? WHERE id = ?',
                         (max(time.time(), message.created_at), message.conversation_id))

    def _messages(self, conversation_id: str) -> list[ChatMessage]:
        rows = self._db.query('SELECT * FROM messages WHERE conversation_id = ? ORDER BY created_at, rowid',
                             (conversation_id,))
        return [_message(row) for row in rows]

    def _last_messages(self, limit: int, conversation_id: str | None = None) -> list[ChatMessage]:
        """The last ``limit`` messages (of one conversation, or of all), oldest first."""
        if conversation_id:
            rows = self._db.query('SELECT * FROM messages WHERE conversation_id = ? '
                                 'ORDER BY created_at DESC, rowid DESC LIMIT ?', (conversation_id, limit))
        else:
            rows = self._db.query('SELECT * FROM messages ORDER BY created_at DESC, rowid DESC LIMIT ?', (limit,))
        return [_message(row) for row in reversed(rows)]

    # --- export -----------------------------------------------------------------------------

    def _require(self, conversation_id: str) -> Conversation:
        conversation = self._get(conversation_id)
        if conversation is None:
            raise ConversationNotFound(f'There is no conversation with the id "{conversation_id[:64]}".')
        return conversation

    def _export_json(self, conversation_id: str) -> str:
        conversation = self._require(conversation_id)
        return json.dumps({
            'format': 'jarvis-conversation',
            'version': 1,
            'id': conversation.id,
            'title': conversation.title,
            'created_at': conversation.created_at,
            'messages': [m.to_dict() for m in self._messages(conversation_id)],
        }, ensure_ascii=False, indent=2)

    def _import_json(self, text: str) -> Conversation:
        """Read back an export as a new conversation (the round trip of export_json)."""
        data = json.loads(text)
        if data.get('format') != 'jarvis-conversation':
            raise ValueError('This is not a J.A.R.V.I.S. conversation export.')
        conversation = self._create(data.get('title') or DEFAULT_TITLE)
        for item in data.get('messages', []):
            fields = {k: item[k] for k in ChatMessage.__dataclass_fields__ if k in item}
            fields.update(id=uuid.uuid4().hex, conversation_id=conversation.id)
            self._save_message(ChatMessage(**fields))
        return self._get(conversation.id) or conversation

    def _export_markdown(self, conversation_id: str) -> str:
        conversation = self._require(conversation_id)
        lines = [f'# {conversation.title}', '',
                 f'_Exported from J.A.R.V.I.S. on {time.strftime("%Y-%m-%d %H:%M")}_', '']
        for message in self._messages(conversation_id):
            who = 'You' if message.role == 'user' else 'J.A.R.V.I.S.'
            stamp = time.strftime('%Y-%m-%d %H:%M', time.localtime(message.created_at))
            note = {'stopped': ' (stopped)', 'error': ' (error)'}.get(message.status, '')
            lines += [f'## {who} · {stamp}{note}', '', message.text, '']
        return '\n'.join(lines)


def clean_title(title: str) -> str:
    return ' '.join(title.split())[:MAX_TITLE_CHARS]


def title_from(text: str) -> str:
    """A conversation's first message names it."""
    words = ' '.join(text.split())
    return words if len(words) <= 48 else words[:47].rstrip() + '…'


def _conversation(row: Any) -> Conversation:
    return Conversation(id=row['id'], title=row['title'], created_at=row['created_at'],
                        updated_at=row['updated_at'], message_count=row['message_count'])


def _message(row: Any) -> ChatMessage:
    return ChatMessage(role=row['role'], text=row['text'], id=row['id'], conversation_id=row['conversation_id'],
                       status=row['status'], created_at=row['created_at'], source=row['source'],
                       model=row['model'], first_token_s=row['first_token_s'], tokens_per_s=row['tokens_per_s'],
                       tokens=row['tokens'])
