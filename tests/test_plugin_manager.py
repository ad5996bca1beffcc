"""The plugin manager: isolation of failing and hanging plugins, entry points, persisted toggles.

Each test names the plugins it counts on (``set_sources``), so none depends on which third-party
plugins happen to be installed next to the app."""
from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.plugins.base import Plugin, PluginContext
from jarvis.plugins.builtin import BUILTIN_PLUGINS
from jarvis.plugins.manager import PluginError, PluginNotFound
from jarvis.services import Services

from .helpers.plugins import entry_points_in
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
    services.plugins.set_sources([Broken, Hanging, Echo])
    await services.start()
    yield services
    await services.stop()


async def test_a_raising_plugin_is_isolated(services: Services) -> None:
    reply = await services.assistant.send('please break')
    assert reply.status == 'error' and reply.source == 'Broken'
    assert 'the plugin fell over' in reply.text
    broken = await services.plugins.get('Broken')
    assert broken.state == 'error' and 'RuntimeError' in broken.error
    assert (await services.assistant.send('echo still here')).text == 'still here'


async def test_a_hanging_plugin_times_out(services: Services) -> None:
    reply = await services.assistant.send('hang on')
    assert reply.status == 'error' and 'did not answer within 0.3 s' in reply.text
    assert (await services.plugins.get('Hanging')).state == 'error'
    assert (await services.assistant.send('echo fine')).text == 'fine'


async def test_toggle_persists_publishes_and_skips_disabled(settings: Settings) -> None:
    services = Services(settings)
    services.plugins.set_sources([Broken, Hanging, Echo])
    await services.start()
    seen: list = []
    services.hub.subscribe(lambda e: seen.append(e.data), types=[events.PLUGIN_TOGGLED])
    await services.plugins.toggle('Broken', False)
    await services.plugins.toggle('Hanging', False)
    await asyncio.sleep(0.05)
    assert [(t.plugin, t.enabled, t.state) for t in seen] == [('Broken', False, 'disabled'),
                                                             ('Hanging', False, 'disabled')]
    assert (await services.assistant.send('break it')).text == 'echo saw: break it'
    with pytest.raises(PluginNotFound, match='no plugin called'):
        await services.plugins.toggle('Nope', True)
    with pytest.raises(PluginError):
        await services.plugins.toggle('x' * 500, True)
    await services.stop()

    again = Services(settings)  # a restart
    again.plugins.set_sources([Broken, Hanging, Echo])
    await again.start()
    try:
        assert {p.name: p.enabled for p in await again.plugins.list()} == \
            {'Broken': False, 'Hanging': False, 'Echo': True}
    finally:
        await again.stop()


async def test_error_clears_when_toggled(services: Services) -> None:
    await services.assistant.send('break')
    assert (await services.plugins.get('Broken')).state == 'error'
    await services.plugins.toggle('Broken', False)
    assert (await services.plugins.toggle('Broken', True)).state == 'enabled'


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
    services.plugins.set_sources([], installed=entry_points_in(site))
    await services.start()
    try:
        dice = await services.plugins.get('Dice')
        assert (dice.source, dice.version, dice.state) == ('installed', '2.1.0', 'enabled')
        reply = await services.assistant.send('Würfle bitte!')
        assert reply.source == 'Dice' and reply.text.startswith('🎲 ')
        broken = await services.plugins.get('broken')
        assert broken.state == 'error' and 'needs numpy 9' in broken.error
        with pytest.raises(PluginError, match='cannot be enabled'):
            await services.plugins.toggle('broken', True)
    finally:
        await services.stop()


async def test_manager_lists_builtins_by_default(settings: Settings) -> None:
    services = Services(settings)
    services.plugins.discover()  # the app's own sources: the built-ins, then whatever is installed here
    listed = await services.plugins.list()
    assert [p.name for p in listed[:6]] == ['Notes', 'Reminders', 'Time and date', 'System status', 'Calculator',
                                            'Wikipedia']
    assert all(p.source == 'built-in' for p in listed[:6]) and all(p.source == 'installed' for p in listed[6:])
    services.db.close()


async def test_a_manager_with_chosen_sources_ignores_what_is_installed(settings: Settings, tmp_path: Path) -> None:
    site = tmp_path / 'site'
    site.mkdir()
    write_third_party_plugin(site)
    services = Services(settings)
    services.plugins.set_sources(BUILTIN_PLUGINS)
    services.plugins.discover()
    assert [p.name for p in await services.plugins.list()] == [plugin.name for plugin in BUILTIN_PLUGINS]
    assert entry_points_in(site)  # there was something to ignore
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
    services.plugins.set_sources([], installed=entry_points_in(tmp_path / 'site'))
    await services.start()
    try:
        english = await services.assistant.send('roll 3 dice')
        assert english.source == 'Dice' and english.text.startswith('Rolled: ') and english.text.count(',') == 2
        dice = await services.plugins.get('Dice')
        assert dice.settings == {'sides': 6} and dice.specs['sides'].lowest == 1
        assert (await services.plugins.configure('Dice', {'sides': 1})).settings == {'sides': 1}
        assert (await services.assistant.send('Bitte würfle 2 Würfel')).text == 'Gewürfelt: 1, 1'
        assert (await services.assistant.send('roll 99 dice')).text == 'I roll 1 to 20 dice.'
        with pytest.raises(PluginError, match='sides must be a whole number from 1 to 100'):
            await services.plugins.configure('Dice', {'sides': 0})
        assert (await services.plugins.get('Dice')).settings == {'sides': 1}
    finally:
        await services.stop()
