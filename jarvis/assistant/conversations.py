"""Conversations and their messages in SQLite: branches, pins and full-text search.

Messages form a tree: each names the message it follows (``parent_id``; '' for a first message).
Editing a message or regenerating an answer adds a message with the same parent, an alternative
("2/3"); a conversation shows one branch, from its first message to its ``head``. A message is
stored when it is sent (an answer when it starts, with its text when it completes).

The public methods are async: each runs its SQL in a worker thread (``Database.run``), so no
caller ever blocks the event loop or touches the database itself.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..events import ChatMessage
from ..storage import Database

DEFAULT_TITLE = 'New conversation'
MAX_TITLE_CHARS = 120
TITLE_FROM_CHARS = 48
MAX_SEARCH_TERMS = 12
MAX_SEARCH_RESULTS = 50
SNIPPET_TOKENS = 14
# FTS5 marks each match in a snippet with these two characters (from Unicode's private use area),
# which the search turns into offsets; a message that holds one of them itself gets no highlights
HIT_OPEN, HIT_CLOSE = '\ue000', '\ue001'
_WORD = re.compile(r'[^\W_]+')  # one character class, one quantifier: linear on any input


class ConversationNotFound(LookupError):
    """There is no conversation with that id (any more); the text says so."""


class MessageNotFound(LookupError):
    """There is no message with that id (any more); the text says so."""


def _no_conversation(conversation_id: str) -> ConversationNotFound:
    return ConversationNotFound(f'There is no conversation with the id "{conversation_id[:64]}".')


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float
    message_count: int = 0
    pinned: bool = False
    head_id: str | None = None  # the last message of the branch it shows
    system_prompt: str | None = None  # None: the default from the settings
    model: str | None = None  # "source:name" of the model it answers with; None: the chat's model

    def to_dict(self) -> dict[str, Any]:
        return {'id': self.id, 'title': self.title, 'created_at': self.created_at, 'updated_at': self.updated_at,
                'messages': self.message_count, 'pinned': self.pinned, 'system_prompt': self.system_prompt,
                'model': self.model}


@dataclass(frozen=True, slots=True)
class ShownMessage:
    """A message of the branch a conversation shows, and where it stands among its alternatives."""

    message: ChatMessage
    alternative: int = 1  # 1-based: "2/3" is alternative 2 of 3
    alternatives: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {**self.message.to_dict(), 'alternative': self.alternative, 'alternatives': self.alternatives}


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation and the branch it shows, oldest message first."""

    conversation: Conversation
    messages: list[ShownMessage]

    def to_dict(self) -> dict[str, Any]:
        return {**self.conversation.to_dict(), 'history': [m.to_dict() for m in self.messages]}


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message (or a conversation's title, ``message_id`` None) that matches a search.

    ``snippet`` is plain text around the match; ``highlights`` are the [start, end) offsets of the
    matched words in it, so that a view marks them without ever reading markup from the database.
    """

    conversation_id: str
    title: str
    message_id: str | None
    role: str
    created_at: float
    snippet: str
    highlights: list[tuple[int, int]]

    def to_dict(self) -> dict[str, Any]:
        return {'conversation_id': self.conversation_id, 'title': self.title, 'message_id': self.message_id,
                'role': self.role, 'created_at': self.created_at, 'snippet': self.snippet,
                'highlights': [list(span) for span in self.highlights]}


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Appending reads the head and moves it: two sends into one conversation at once must not both
        # follow the same head (that would fork the conversation without anyone asking for it).
        self._head_lock = threading.Lock()

    # --- the async interface ----------------------------------------------------------------

    async def repair(self) -> None:
        """Make the stored tree whole: run once at start, before anything is sent."""
        await self._db.run(self._repair)

    async def create(self, title: str = DEFAULT_TITLE) -> Conversation:
        return await self._db.run(self._create, title)

    async def get(self, conversation_id: str) -> Conversation | None:
        return await self._db.run(self._get, conversation_id)

    async def require(self, conversation_id: str) -> Conversation:
        conversation = await self.get(conversation_id)
        if conversation is None:
            raise _no_conversation(conversation_id)
        return conversation

    async def list(self) -> list[Conversation]:
        return await self._db.run(self._list)

    async def latest(self) -> Conversation | None:
        """The conversation used last: the one with the newest message, or the newest empty one."""
        return await self._db.run(self._latest)

    async def rename(self, conversation_id: str, title: str) -> Conversation:
        return await self._db.run(self._rename, conversation_id, title)

    async def set_answering(self, conversation_id: str, system_prompt: str | None, model: str | None) -> Conversation:
        """Its own system prompt and model (None: the defaults)."""
        return await self._db.run(self._set_answering, conversation_id, system_prompt, model)

    async def set_pinned(self, conversation_id: str, pinned: bool) -> Conversation:
        return await self._db.run(self._set_pinned, conversation_id, pinned)

    async def title_for(self, text: str, conversation_id: str) -> str:
        """A title from a first message, told apart from the other conversations' titles."""
        return await self._db.run(self._unique_title, title_from(text), conversation_id)

    async def delete(self, conversation_id: str) -> bool:
        return await self._db.run(self._delete, conversation_id)

    async def append(self, conversation_id: str, messages: list[ChatMessage],
                     parent_id: str | None = None) -> list[ChatMessage]:
        """Store messages that follow each other, the first after ``parent_id`` (default: the head), and
        show them: the conversation's head moves to the last. Returns them with their parents set."""
        return await self._db.run(self._append, conversation_id, messages, parent_id)

    async def save_message(self, message: ChatMessage) -> None:
        """Store a message's final state (an answer's text when it completes)."""
        await self._db.run(self._save_message, message)

    async def message(self, message_id: str) -> ChatMessage:
        found = await self._db.run(self._message, message_id)
        if found is None:
            raise MessageNotFound(f'There is no message with the id "{message_id[:64]}".')
        return found

    async def thread(self, conversation_id: str) -> Thread:
        return await self._db.run(self._thread, conversation_id)

    async def path_to(self, conversation_id: str, message_id: str) -> list[ChatMessage]:
        """The messages of the branch that ends at ``message_id``, oldest first (what the model reads)."""
        return await self._db.run(self._path_to, conversation_id, message_id)

    async def show(self, message_id: str, step: int = 0) -> str:
        """Show the branch of a message's alternative ``step`` places away (0: the message itself), down to
        its newest answer; returns the conversation's id."""
        return await self._db.run(self._show, message_id, step)

    async def last_messages(self, limit: int, conversation_id: str | None = None) -> list[ShownMessage]:
        """The last ``limit`` shown messages (of one conversation, or of every one), oldest first."""
        return await self._db.run(self._last_messages, limit, conversation_id)

    async def search(self, query: str, limit: int = MAX_SEARCH_RESULTS) -> list[SearchHit]:
        return await self._db.run(self._search, query, limit)

    async def export(self, conversation_id: str, kind: str) -> str:
        """The conversation as ``md`` (Markdown, the branch it shows) or ``json`` (every alternative, the
        format ``import_json`` reads)."""
        return await self._db.run(self._export_markdown if kind == 'md' else self._export_json, conversation_id)

    async def import_json(self, text: str) -> Conversation:
        return await self._db.run(self._import_json, text)

    # --- conversations ----------------------------------------------------------------------

    _SELECT = ('SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count '
               'FROM conversations c')

    def _create(self, title: str = DEFAULT_TITLE) -> Conversation:
        now = time.time()
        conversation = Conversation(id=uuid.uuid4().hex, title=clean_title(title) or DEFAULT_TITLE, created_at=now,
                                    updated_at=now)
        self._db.execute('INSERT INTO conversations(id, title, created_at, updated_at) VALUES(?, ?, ?, ?)',
                         (conversation.id, conversation.title, now, now))
        return conversation

    def _get(self, conversation_id: str) -> Conversation | None:
        row = self._db.query_one(f'{self._SELECT} WHERE c.id = ?', (conversation_id,))
        return _conversation(row) if row else None

    def _require(self, conversation_id: str) -> Conversation:
        conversation = self._get(conversation_id)
        if conversation is None:
            raise _no_conversation(conversation_id)
        return conversation

    def _list(self) -> list[Conversation]:
        """Pinned ones first, then newest first."""
        rows = self._db.query(f'{self._SELECT} ORDER BY c.pinned DESC, c.updated_at DESC, c.created_at DESC')
        return [_conversation(row) for row in rows]

    def _latest(self) -> Conversation | None:
        row = self._db.query_one(f'{self._SELECT} ORDER BY c.updated_at DESC, c.created_at DESC LIMIT 1')
        return _conversation(row) if row else None

    def _rename(self, conversation_id: str, title: str) -> Conversation:
        cleaned = clean_title(title)
        if not cleaned:
            raise ValueError('A conversation needs a name.')
        self._db.execute('UPDATE conversations SET title = ? WHERE id = ?', (cleaned, conversation_id))
        return self._require(conversation_id)

    def _set_answering(self, conversation_id: str, system_prompt: str | None, model: str | None) -> Conversation:
        self._db.execute('UPDATE conversations SET system_prompt = ?, model = ? WHERE id = ?',
                         (system_prompt, model, conversation_id))
        return self._require(conversation_id)

    def _set_pinned(self, conversation_id: str, pinned: bool) -> Conversation:
        self._db.execute('UPDATE conversations SET pinned = ? WHERE id = ?', (int(pinned), conversation_id))
        return self._require(conversation_id)

    def _unique_title(self, title: str, conversation_id: str) -> str:
        """``title``, or with the date and time when another conversation has that title (and a number
        when one was even made in the same minute)."""
        taken = {row['title'] for row in
                 self._db.query('SELECT title FROM conversations WHERE id != ?', (conversation_id,))}
        if title not in taken:
            return title
        dated = f'{title} · {time.strftime("%b %d, %H:%M")}'
        candidate, number = dated, 2
        while candidate in taken:
            candidate, number = f'{dated} ({number})', number + 1
        return candidate

    def _delete(self, conversation_id: str) -> bool:
        return self._db.execute('DELETE FROM conversations WHERE id = ?', (conversation_id,)).rowcount > 0

    # --- messages ---------------------------------------------------------------------------

    def _append(self, conversation_id: str, messages: list[ChatMessage], parent_id: str | None) -> list[ChatMessage]:
        with self._head_lock:
            conversation = self._require(conversation_id)
            parent = (conversation.head_id or '') if parent_id is None else parent_id
            stored: list[ChatMessage] = []
            for message in messages:
                message = replace(message, conversation_id=conversation_id, parent_id=parent)
                try:
                    self._insert(message)
                except sqlite3.IntegrityError as error:  # the conversation was deleted meanwhile (foreign key)
                    raise ConversationNotFound(f'The conversation "{conversation_id[:64]}" no longer exists.') \
                        from error
                stored.append(message)
                parent = message.id
            self._db.execute('UPDATE conversations SET head_id = ?, updated_at = ? WHERE id = ?',
                             (parent, max(time.time(), *(m.created_at for m in stored)), conversation_id))
            return stored

    def _insert(self, message: ChatMessage) -> None:
        self._db.execute(
            'INSERT INTO messages(id, conversation_id, parent_id, role, text, status, created_at, source, model, '
            'first_token_s, tokens_per_s, tokens, tools) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (message.id, message.conversation_id, message.parent_id, message.role, message.text, message.status,
             message.created_at, message.source, message.model, message.first_token_s, message.tokens_per_s,
             message.tokens, _tools_column(message)))

    def _save_message(self, message: ChatMessage) -> None:
        """Update a stored message to its final state and touch its conversation; a message not stored yet
        is appended (after its parent, or after the head when it has none)."""
        updated = self._db.execute(
            'UPDATE messages SET text = ?, status = ?, source = ?, model = ?, first_token_s = ?, tokens_per_s = ?, '
            'tokens = ?, tools = ? WHERE id = ? AND conversation_id = ?',
            (message.text, message.status, message.source, message.model, message.first_token_s,
             message.tokens_per_s, message.tokens, _tools_column(message), message.id,
             message.conversation_id)).rowcount
        if not updated:  # new, or gone with its conversation (then _append says so)
            self._append(message.conversation_id, [message], message.parent_id or None)
            return
        self._db.execute('UPDATE conversations SET updated_at = ? WHERE id = ?',
                         (max(time.time(), message.created_at), message.conversation_id))

    def _message(self, message_id: str) -> ChatMessage | None:
        row = self._db.query_one('SELECT * FROM messages WHERE id = ?', (message_id,))
        return _message(row) if row else None

    def _tree(self, conversation_id: str) -> _Tree:
        rows = self._db.query('SELECT * FROM messages WHERE conversation_id = ? ORDER BY created_at, seq',
                              (conversation_id,))
        return _Tree(_message(row) for row in rows)

    def _thread(self, conversation_id: str) -> Thread:
        conversation = self._require(conversation_id)
        tree = self._tree(conversation_id)
        shown = []
        for message in tree.path(conversation.head_id or tree.last_id()):
            siblings = tree.siblings(message)
            shown.append(ShownMessage(message, siblings.index(message.id) + 1, len(siblings)))
        return Thread(conversation, shown)

    def _path_to(self, conversation_id: str, message_id: str) -> list[ChatMessage]:
        return self._tree(conversation_id).path(message_id)

    def _show(self, message_id: str, step: int) -> str:
        with self._head_lock:
            message = self._message(message_id)
            if message is None:
                raise MessageNotFound(f'There is no message with the id "{message_id[:64]}".')
            tree = self._tree(message.conversation_id)
            siblings = tree.siblings(message)
            index = siblings.index(message.id) + step
            if not 0 <= index < len(siblings):
                raise MessageNotFound(f'This message has no alternative {index + 1} (it has {len(siblings)}).')
            self._db.execute('UPDATE conversations SET head_id = ? WHERE id = ?',
                             (tree.newest_leaf(siblings[index]), message.conversation_id))
            return message.conversation_id

    def _last_messages(self, limit: int, conversation_id: str | None = None) -> list[ShownMessage]:
        if conversation_id:
            return self._thread(conversation_id).messages[-limit:]
        # every conversation's shown branch: from each head up its parents (UNION: a damaged loop ends)
        rows = self._db.query(
            'WITH RECURSIVE shown(id) AS ('
            "  SELECT head_id FROM conversations WHERE head_id IS NOT NULL AND head_id != ''"
            '  UNION SELECT m.parent_id FROM messages m JOIN shown ON m.id = shown.id'
            "  WHERE m.parent_id IS NOT NULL AND m.parent_id != '') "
            'SELECT m.*, '
            ' (SELECT COUNT(*) FROM messages s WHERE s.conversation_id = m.conversation_id'
            '  AND s.parent_id IS m.parent_id) AS alternatives, '
            ' (SELECT COUNT(*) FROM messages s WHERE s.conversation_id = m.conversation_id'
            '  AND s.parent_id IS m.parent_id AND (s.created_at, s.seq) <= (m.created_at, m.seq)) AS alternative '
            'FROM messages m JOIN shown ON m.id = shown.id ORDER BY m.created_at DESC, m.seq DESC LIMIT ?',
            (limit,))
        return [ShownMessage(_message(row), row['alternative'], row['alternatives']) for row in reversed(rows)]

    # --- search -----------------------------------------------------------------------------

    def _search(self, query: str, limit: int) -> list[SearchHit]:
        terms = search_terms(query)
        if not terms:
            return []
        folded = [fold(term) for term in terms]
        hits: list[SearchHit] = []
        for row in self._db.query('SELECT id, title, updated_at FROM conversations '
                                  'ORDER BY pinned DESC, updated_at DESC'):
            spans = _title_matches(row['title'], folded)
            if spans is not None:
                hits.append(SearchHit(row['id'], row['title'], None, '', row['updated_at'], row['title'], spans))
        # every word as a prefix ("pari" finds "Paris"); quoted, so no word is read as FTS5 syntax
        match = ' '.join(f'"{term}"*' for term in terms)
        rows = self._db.query(
            'SELECT m.id, m.conversation_id, m.role, m.created_at, m.text, c.title, '
            '  snippet(message_search, 0, ?, ?, ?, ?) AS snippet '
            'FROM message_search JOIN messages m ON m.seq = message_search.rowid '
            'JOIN conversations c ON c.id = m.conversation_id '
            'WHERE message_search MATCH ? ORDER BY rank, m.created_at DESC LIMIT ?',
            (HIT_OPEN, HIT_CLOSE, '…', SNIPPET_TOKENS, match, limit))
        for row in rows:
            snippet, highlights = read_snippet(row['snippet'], marked=HIT_OPEN not in row['text']
                                                and HIT_CLOSE not in row['text'])
            hits.append(SearchHit(row['conversation_id'], row['title'], row['id'], row['role'], row['created_at'],
                                  snippet, highlights))
        return hits[:limit]

    # --- keeping the tree whole -------------------------------------------------------------

    def _repair(self) -> None:
        # an answer that was streaming when the app ended (a crash; a normal exit keeps it as "stopped")
        self._db.execute("UPDATE messages SET status = 'stopped' WHERE status = 'streaming'")
        # messages from before branches, or salvaged from a damaged database: each follows the one before
        unlinked = self._db.query('SELECT DISTINCT conversation_id FROM messages WHERE parent_id IS NULL')
        for row in unlinked:
            previous = ''
            links = []
            for message in self._db.query('SELECT id, parent_id FROM messages WHERE conversation_id = ? '
                                          'ORDER BY created_at, seq', (row['conversation_id'],)):
                if message['parent_id'] is None:
                    links.append((previous, message['id']))
                previous = message['id']
            self._db.executemany('UPDATE messages SET parent_id = ? WHERE id = ?', links)
        # a conversation shows its newest message where its head is unknown or gone
        self._db.execute(
            'UPDATE conversations SET head_id = (SELECT m.id FROM messages m '
            '  WHERE m.conversation_id = conversations.id ORDER BY m.created_at DESC, m.seq DESC LIMIT 1) '
            'WHERE head_id IS NULL OR NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = conversations.head_id '
            '  AND m.conversation_id = conversations.id)')

    # --- export and import ------------------------------------------------------------------

    def _export_json(self, conversation_id: str) -> str:
        conversation = self._require(conversation_id)
        tree = self._tree(conversation_id)
        return json.dumps({
            'format': 'jarvis-conversation',
            'version': 2,
            'id': conversation.id,
            'title': conversation.title,
            'created_at': conversation.created_at,
            'head_id': conversation.head_id,
            'messages': [m.to_dict() for m in tree.messages],  # every alternative, each with its parent_id
        }, ensure_ascii=False, indent=2)

    def _import_json(self, text: str) -> Conversation:
        """Read back an export as a new conversation (the round trip of export_json; version 1 too)."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get('format') != 'jarvis-conversation':
            raise ValueError('This is not a J.A.R.V.I.S. conversation export.')
        conversation = self._create(str(data.get('title') or DEFAULT_TITLE))
        new_ids: dict[str, str] = {}
        previous = ''
        for item in data.get('messages', []):
            fields = {k: item[k] for k in ChatMessage.__dataclass_fields__ if k in item}
            old_id, old_parent = str(fields.get('id', '')), fields.get('parent_id')
            # version 1 has no parents: each message follows the one before
            parent = previous if old_parent is None else new_ids.get(str(old_parent), '')
            fields.update(id=uuid.uuid4().hex, conversation_id=conversation.id, parent_id=parent)
            message = ChatMessage(**fields)
            self._insert(message)
            new_ids[old_id] = previous = message.id
        head = new_ids.get(str(data.get('head_id')), previous) or None
        self._db.execute('UPDATE conversations SET head_id = ? WHERE id = ?', (head, conversation.id))
        return self._require(conversation.id)

    def _export_markdown(self, conversation_id: str) -> str:
        thread = self._thread(conversation_id)
        lines = [f'# {thread.conversation.title}', '',
                 f'_Exported from J.A.R.V.I.S. on {time.strftime("%Y-%m-%d %H:%M")}_', '']
        for shown in thread.messages:
            message = shown.message
            who = 'You' if message.role == 'user' else 'J.A.R.V.I.S.'
            stamp = time.strftime('%Y-%m-%d %H:%M', time.localtime(message.created_at))
            note = {'stopped': ' (stopped)', 'error': ' (error)'}.get(message.status, '')
            lines += [f'## {who} · {stamp}{note}', '', message.text, '']
        return '\n'.join(lines)


class _Tree:
    """One conversation's messages as a tree (in time order among siblings)."""

    def __init__(self, messages: Iterable[ChatMessage]) -> None:
        self.messages = list(messages)
        self.by_id = {m.id: m for m in self.messages}
        self.children: dict[str, list[str]] = {}
        for message in self.messages:
            self.children.setdefault(message.parent_id, []).append(message.id)

    def last_id(self) -> str | None:
        return self.messages[-1].id if self.messages else None

    def path(self, last_id: str | None) -> list[ChatMessage]:
        """From the first message to ``last_id``."""
        path: list[ChatMessage] = []
        seen: set[str] = set()
        while last_id and last_id in self.by_id and last_id not in seen:  # seen: a damaged loop ends
            seen.add(last_id)
            path.append(self.by_id[last_id])
            last_id = self.by_id[last_id].parent_id
        return path[::-1]

    def siblings(self, message: ChatMessage) -> list[str]:
        return self.children.get(message.parent_id, [message.id])

    def newest_leaf(self, message_id: str) -> str:
        """Down from a message, always to the newest reply, to the end of that branch."""
        seen: set[str] = set()
        while self.children.get(message_id) and message_id not in seen:
            seen.add(message_id)
            message_id = self.children[message_id][-1]
        return message_id


def clean_title(title: str) -> str:
    return ' '.join(title.split())[:MAX_TITLE_CHARS]


def title_from(text: str) -> str:
    """A conversation's first message names it."""
    words = ' '.join(text.split())
    return words if len(words) <= TITLE_FROM_CHARS else words[:TITLE_FROM_CHARS - 1].rstrip() + '…'


def fold(word: str) -> str:
    """A word as the search index compares it: without case and without diacritics ("Élan" -> "elan")."""
    return ''.join(c for c in unicodedata.normalize('NFKD', word) if not unicodedata.combining(c)).casefold()


def search_terms(query: str) -> list[str]:
    """The words of a search (letters and digits; everything else separates them)."""
    return _WORD.findall(query)[:MAX_SEARCH_TERMS]


def read_snippet(snippet: str, marked: bool = True) -> tuple[str, list[tuple[int, int]]]:
    """Plain text and the offsets of its highlighted words, from a snippet that FTS5 marked with
    HIT_OPEN/HIT_CLOSE. ``marked`` False: the message holds those characters itself, so none of them
    can be trusted as marks; the text comes back without highlights."""
    plain: list[str] = []
    highlights: list[tuple[int, int]] = []
    length, start = 0, None
    for char in snippet:
        if char == HIT_OPEN:
            if marked:
                start = length
            continue
        if char == HIT_CLOSE:
            if marked and start is not None and length > start:
                highlights.append((start, length))
            start = None
            continue
        plain.append(char)
        length += 1
    return ''.join(plain), highlights



def _title_matches(title: str, folded_terms: list[str]) -> list[tuple[int, int]] | None:
    """As FTS5 reads a search: every term starts a word of the title. The matched words' offsets, or None."""
    words = [(match.start(), match.end(), fold(match.group())) for match in _WORD.finditer(title)]
    spans: set[tuple[int, int]] = set()
    for term in folded_terms:
        found = [(start, end) for start, end, word in words if word.startswith(term)]
        if not found:
            return None
        spans.update(found)
    return sorted(spans)


def _conversation(row: Any) -> Conversation:
    return Conversation(id=row['id'], title=row['title'], created_at=row['created_at'],
                        updated_at=row['updated_at'], message_count=row['message_count'],
                        pinned=bool(row['pinned']), head_id=row['head_id'] or None,
                        system_prompt=row['system_prompt'], model=row['model'] or None)


def _message(row: Any) -> ChatMessage:
    return ChatMessage(role=row['role'], text=row['text'], id=row['id'], conversation_id=row['conversation_id'],
                       status=row['status'], created_at=row['created_at'], source=row['source'],
                       model=row['model'], first_token_s=row['first_token_s'], tokens_per_s=row['tokens_per_s'],
                       tokens=row['tokens'], parent_id=row['parent_id'] or '', tools=_tools_from(row))


def _tools_column(message: ChatMessage) -> str:
    return json.dumps(message.tools) if message.tools else ''


def _tools_from(row: Any) -> list[dict[str, Any]]:
    """The tools stored with an answer; [] for none, or for a row the query did not select them in."""
    try:
        raw = row['tools']
    except (IndexError, KeyError):
        return []
    try:
        tools = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
