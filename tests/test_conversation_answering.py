"""A conversation's own system prompt and model, with the defaults from the settings: through the
assistant, PATCH /api/chat/conversations/{id} and the chat view's dialog."""
from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.assistant.assistant import SYSTEM_PROMPT
from jarvis.models.default_model import DEFAULT_MODEL_FILE
from jarvis.ui import notifications

from .conftest import Harness
from .helpers.scripted_model import ScriptedModel
from .helpers.waiting import eventually
from .test_chat_view import send

GEMMA = Path(DEFAULT_MODEL_FILE).stem


def system_turn(model: ScriptedModel) -> str:
    first = model.prompts[-1][0]
    assert first.role == 'system'
    return first.content


async def test_each_conversation_answers_with_its_own_system_prompt(jarvis: Harness) -> None:
    await jarvis.services.models.activate(model := ScriptedModel(['Arr.']), model.info)
    assistant = jarvis.services.assistant
    pirate = await assistant.new_conversation()
    plain = await assistant.new_conversation()
    async with jarvis.http() as http:
        changed = await http.patch(f'/api/chat/conversations/{pirate.id}',
                                   json={'system_prompt': '  Answer like a pirate.  '})
        assert changed.status_code == 200 and changed.json()['system_prompt'] == 'Answer like a pirate.'
        assert (await http.get(f'/api/chat/conversations/{pirate.id}')).json()['system_prompt'] == \
            'Answer like a pirate.'
        await http.post('/api/chat', json={'message': 'hello', 'conversation_id': pirate.id})
        assert system_turn(model) == 'Answer like a pirate.'
        await http.post('/api/chat', json={'message': 'hello', 'conversation_id': plain.id})
        assert system_turn(model) == SYSTEM_PROMPT, "J.A.R.V.I.S.'s own prompt by default"

        await jarvis.services.models.set_options(system_prompt='Be brief.')  # the default from the settings
        await http.post('/api/chat', json={'message': 'again', 'conversation_id': plain.id})
        assert system_turn(model) == 'Be brief.'
        await http.post('/api/chat', json={'message': 'again', 'conversation_id': pirate.id})
        assert system_turn(model) == 'Answer like a pirate.', 'its own prompt wins over the default'

        back = await http.patch(f'/api/chat/conversations/{pirate.id}', json={'system_prompt': ''})
        assert back.status_code == 200 and back.json()['system_prompt'] is None
        await http.post('/api/chat', json={'message': 'and now?', 'conversation_id': pirate.id})
        assert system_turn(model) == 'Be brief.'

        too_long = await http.patch(f'/api/chat/conversations/{pirate.id}', json={'system_prompt': 'x' * 4001})
        assert too_long.status_code == 422 and set(too_long.json()) == {'error'}


async def test_a_conversation_answers_with_its_own_model(jarvis: Harness, models_dir: Path) -> None:
    (jarvis.services.settings.models_dir / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    await jarvis.services.models.set_options(max_tokens=4, temperature=0.0)
    await jarvis.services.models.activate(scripted := ScriptedModel(['Scripted.']), scripted.info)
    assistant = jarvis.services.assistant
    gemma_talk = await assistant.new_conversation()
    async with jarvis.http() as http:
        path = f'/api/chat/conversations/{gemma_talk.id}'
        unknown = await http.patch(path, json={'model': 'local:no-such-model'})
        assert unknown.status_code == 422 and 'There is no model "local:no-such-model"' in unknown.json()['error']
        assert (await http.get(path)).json()['model'] is None, 'a refused change changes nothing'
        chosen = await http.patch(path, json={'model': f'local:{GEMMA}'})
        assert chosen.status_code == 200 and chosen.json()['model'] == f'local:{GEMMA}'

        answer = (await http.post('/api/chat', json={'message': 'Hi', 'conversation_id': gemma_talk.id})).json()
        assert answer['status'] == 'done' and answer['model'] == GEMMA, 'the real Gemma was loaded for it'
        assert jarvis.services.models.active_info.name == GEMMA
        assert scripted.prompts == []

        back = await http.patch(path, json={'model': ''})
        assert back.status_code == 200 and back.json()['model'] is None


async def test_the_chat_view_sets_them_for_the_conversation_it_shows(jarvis: Harness,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(notifications, 'notify', lambda client, message, **_: shown.append(message))
    await jarvis.services.models.activate(model := ScriptedModel(['Fine.']), model.info)
    user = jarvis.new_user()
    await user.open('/chat')
    await send(user, 'hello')
    await eventually(lambda: model.prompts)
    conversation = (await jarvis.services.assistant.conversations())[0]
    user.find(marker='answering-conversation').click()
    await eventually(lambda: user.find(marker='answering-prompt'))  # once the models are listed
    user.find(marker='answering-prompt').type('Speak German.')
    user.find(marker='answering-save').click()
    await eventually(lambda: shown == ['Saved: the next answer uses them.'])
    assert (await jarvis.services.assistant.conversation(conversation.id)).system_prompt == 'Speak German.'
    await jarvis.services.assistant.send('und jetzt?', conversation_id=conversation.id)
    assert system_turn(model) == 'Speak German.'
