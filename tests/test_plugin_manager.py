"""The plugin manager: isolation of failing and hanging plugins, entry points, persisted toggles."""
from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.plugins.base import Plugin, PluginContext
from jarvis.plugins.manager import PluginError
from jarvis.services import Services

from .helpers.scripted_model import ScriptedModel


class Broken(Plugin):
    name = 'Broken'
    description = 'Always raises.'
    patterns = [r'\bbreak\b']

    async def handle(self, message: str, context: PluginContext) -> str | None:
        raise RuntimeError('the plugin fell over')


class Hanging(Plugin):
    name = 'Hanging'
    description = 'Never answers.'
    patterns = [r'\bhang\b']
    timeout = 0.3

    async def handle(self, message: str, context: PluginContext) -> str | None:
        await asyncio.sleep(3600)
        return 'never'


class Echo(Plugin):
    name = 'Echo'
    description = 'Echoes "echo ..." messages.'
    patterns = [r'^echo (.+)$', r'\bbreak\b', r'\bhang\b']

    async def handle(self, message: str, context: PluginContext) -> str | None:
        found = self.match(message)
        return found.group(1) if found and found.lastindex else f'echo saw: {message}'


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = Services(settings)
    services.plugins._builtins = [Broken, Hanging, Echo]  # pylint: disable=protected-access
    await services.start()
    yield services
    await services.stop()


async def test_a_raising_plugin_is_isolated(services: Services) -> None:
    reply = await services.assistant.send('please break')
    assert reply.status == 'error' and reply.source == 'Broken'
    assert 'the plugin fell over' in reply.text
    entry = services.plugins.entries['Broken']
    assert entry.state == 'error' and 'RuntimeError' in entry.error
    assert (await services.assistant.send('echo still here')).text == 'still here'


async def test_a_hanging_plugin_times_out(services: Services) -> None:
    started = time.perf_counter()
    reply = await services.assistant.send('hang on')
    assert time.perf_counter() - started < 3
    assert reply.status == 'error' and 'did not answer within 0.3 s' in reply.text
    assert services.plugins.entries['Hanging'].state == 'error'
    assert (await services.assistant.send('echo fine')).text == 'fine'


async def test_toggle_persists_publishes_and_skips_disabled(settings: Settings) -> None:
    services = Services(settings)
    services.plugins._builtins = [Broken, Hanging, Echo]  # pylint: disable=protected-access
    await services.start()
    seen: list = []
    services.hub.subscribe(lambda e: seen.append(e.data), types=[events.PLUGIN_TOGGLED])
    await services.plugins.toggle('Broken', False)
    await services.plugins.toggle('Hanging', False)
    await asyncio.sleep(0.05)
    assert [(t.plugin, t.enabled, t.state) for t in seen] == [('Broken', False, 'disabled'),
                                                             ('Hanging', False, 'disabled')]
    assert (await services.assistant.send('break it')).text == 'echo saw: break it'
    with pytest.raises(PluginError, match='no plugin called'):
        await services.plugins.toggle('Nope', True)
    with pytest.raises(PluginError):
        await services.plugins.toggle('x' * 500, True)
    await services.stop()

    again = Services(settings)  # a restart
    again.plugins._builtins = [Broken, Hanging, Echo]  # pylint: disable=protected-access
    await again.start()
    try:
        assert {e.name: e.enabled for e in again.plugins.list()} == {'Broken': False, 'Hanging': False, 'Echo': True}
    finally:
        await again.stop()


async def test_error_clears_when_toggled(services: Services) -> None:
    await services.assistant.send('break')
    assert services.plugins.entries['Broken'].state == 'error'
    await services.plugins.toggle('Broken', False)
    await services.plugins.toggle('Broken', True)
    assert services.plugins.entries['Broken'].state == 'enabled'


async def test_declining_plugin_lets_the_model_answer(services: Services) -> None:
    model = ScriptedModel(['from the model'])
    await services.models.activate(model, model.info)
    await services.plugins.toggle('Broken', False)
    await services.plugins.toggle('Hanging', False)
    await services.plugins.toggle('Echo', False)
    assert (await services.assistant.send('echo nothing')).text == 'from the model'


def write_third_party_plugin(root: Path) -> None:
    """A package installed the way pip installs one: code plus a dist-info with an entry point."""
    (root / 'jarvis_dice.py').write_text(textwrap.dedent('''
        import random
        from jarvis.plugins.base import Plugin

        class DicePlugin(Plugin):
            name = 'Dice'
            description = 'Rolls a die: "roll a die" / "würfle".'
            version = '2.1.0'
            patterns = [r'\\broll a die\\b', r'\\bwürfle\\b']

            async def handle(self, message, context):
                return f'🎲 {random.randint(1, 6)}'
    '''))
    (root / 'jarvis_broken_plugin.py').write_text('raise ImportError("needs numpy 9")\n')
    info = root / 'jarvis_dice-2.1.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: jarvis-dice\nVersion: 2.1.0\n')
    (info / 'entry_points.txt').write_text(
        '[jarvis.plugins]\ndice = jarvis_dice:DicePlugin\nbroken = jarvis_broken_plugin:Plugin\n')


@pytest.mark.allow_errors
async def test_third_party_plugin_from_an_entry_point(settings: Settings, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / 'site'
    site.mkdir()
    write_third_party_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, 'jarvis_dice', raising=False)
    services = Services(settings)
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    try:
        dice = services.plugins.entries['Dice']
        assert (dice.source, dice.version, dice.state) == ('installed', '2.1.0', 'enabled')
        reply = await services.assistant.send('Würfle bitte!')
        assert reply.source == 'Dice' and reply.text.startswith('🎲 ')
        broken = services.plugins.entries['broken']
        assert broken.state == 'error' and 'needs numpy 9' in broken.error
        with pytest.raises(PluginError, match='cannot be enabled'):
            await services.plugins.toggle('broken', True)
    finally:
        await services.stop()


def test_manager_lists_builtins_by_default(settings: Settings) -> None:
    services = Services(settings)
    services.plugins.discover()
    names = [e.name for e in services.plugins.list()]
    assert names == ['Notes', 'Reminders', 'Time and date', 'System status', 'Calculator', 'Wikipedia']
    services.db.close()


async def test_the_readme_example_plugin_works(settings: Settings, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).parent.parent / 'README.md').read_text()
    code = readme.split('# jarvis_dice/__init__.py\n', 1)[1].split('```', 1)[0]
    package = tmp_path / 'site' / 'jarvis_dice'
    package.mkdir(parents=True)
    (package / '__init__.py').write_text(code)
    info = tmp_path / 'site' / 'jarvis_dice-1.0.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: jarvis-dice\nVersion: 1.0.0\n')
    (info / 'entry_points.txt').write_text('[jarvis.plugins]\ndice = jarvis_dice:DicePlugin\n')
    monkeypatch.syspath_prepend(str(tmp_path / 'site'))
    monkeypatch.delitem(sys.modules, 'jarvis_dice', raising=False)  # another test's jarvis_dice
    services = Services(settings)
    services.plugins._builtins = []  # pylint: disable=protected-access
    await services.start()
    try:
        english = await services.assistant.send('roll 3 dice')
        assert english.source == 'Dice' and english.text.startswith('Rolled: ') and english.text.count(',') == 2
        await services.plugins.configure('Dice', {'sides': 1})
        assert (await services.assistant.send('Bitte würfle 2 Würfel')).text == 'Gewürfelt: 1, 1'
        assert (await services.assistant.send('roll 99 dice')).text == 'I roll 1 to 20 dice.'
    finally:
        await services.stop()
