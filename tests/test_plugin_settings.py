"""Plugin settings (issue 11, item 11): checked against what each plugin declares before anything
is stored, read back as in effect, announced to every window; errors are clear, encodable sentences."""
from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator

import pytest

from jarvis import events
from jarvis.config import Settings
from jarvis.plugins.base import Plugin, PluginContext, Setting
from jarvis.plugins.builtin import WikipediaPlugin
from jarvis.plugins.manager import SETTINGS_KEY, PluginError, PluginNotFound
from jarvis.plugins.settings import MAX_SAFE_INTEGER, SettingError
from jarvis.services import Services

from .helpers.waiting import eventually


class Dice(Plugin):
    """The README's dice plugin as it was: a plain default, no range."""

    name = 'Dice'
    description = 'Rolls a die.'
    patterns = [r'\broll\b']
    settings = {'sides': 6}

    async def handle(self, message: str, context: PluginContext) -> str | None:
        return f'sides={context.plugin_settings["sides"]!r}'


class Tuned(Plugin):
    name = 'Tuned'
    description = 'One setting of each kind.'
    patterns = [r'\btuned\b']
    settings = {
        'loud': False,
        'volume': Setting(0.5, min=0.0, max=1.0, description='From silent to full.'),
        'voice': Setting('calm', choices=('calm', 'bright')),
        'name': 'Jarvis',
    }

    async def handle(self, message: str, context: PluginContext) -> str | None:
        return json.dumps(context.plugin_settings, sort_keys=True)


class BadDeclaration(Plugin):
    name = 'Bad declaration'
    description = 'Declares a list as a setting.'
    patterns = [r'\bbad\b']
    settings = {'items': [1, 2]}  # type: ignore[dict-item]

    async def handle(self, message: str, context: PluginContext) -> str | None:
        return 'never'


PLUGINS: list[type[Plugin]] = [WikipediaPlugin, Dice, Tuned, BadDeclaration]


async def started(settings: Settings) -> Services:
    services = Services(settings)
    services.plugins.set_sources(PLUGINS)
    await services.start()
    return services


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    services = await started(settings)
    yield services
    await services.stop()


def encodable(error: BaseException) -> str:
    """An error message must survive being sent as UTF-8 JSON (a lone surrogate would not)."""
    text = str(error)
    json.dumps({'error': text}, ensure_ascii=False).encode('utf-8')
    return text


# --- what a plugin may declare ------------------------------------------------------------------

@pytest.mark.parametrize(('declaration', 'problem'), [
    (lambda: Setting([1, 2]), 'a bool, int, float or str'),  # type: ignore[arg-type]
    (lambda: Setting('x', min=1), 'only a number setting'),
    (lambda: Setting(0, min=1, max=10), 'the default 0 is not allowed'),
    (lambda: Setting(5, min=10, max=1), 'more than max'),
    (lambda: Setting(1.0, max=math.inf), 'finite'),
    (lambda: Setting('calm', choices=('calm', 3)), 'every choice must be str'),
    (lambda: Setting('loud', choices=('calm',)), 'must be one of: calm'),
])
def test_a_declaration_that_cannot_work_is_refused(declaration, problem: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingError, match=problem):
        declaration()


@pytest.mark.parametrize(('spec', 'value', 'stored'), [
    (Setting(6, min=1, max=100), 100, 100),
    (Setting(6, min=1, max=100), 2.0, 2),  # a number field sends 2.0 for a whole 2
    (Setting(0.5, min=0.0, max=1.0), 1, 1.0),
    (Setting(True), False, False),
    (Setting('calm', choices=('calm', 'bright')), 'bright', 'bright'),
    (Setting(6), -MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER),
    (Setting('x'), 'Grüße 🎲', 'Grüße 🎲'),
])
def test_a_value_that_fits_is_stored_as_declared(spec: Setting, value: object, stored: object) -> None:
    checked = spec.check(value)
    assert checked == stored and type(checked) is type(stored)


@pytest.mark.parametrize(('spec', 'value', 'message'), [
    (Setting(6, min=1, max=100), 0, 'sides must be a whole number from 1 to 100.'),
    (Setting(6, min=1, max=100), 2.5, 'sides must be a whole number from 1 to 100.'),
    (Setting(6, min=1, max=100), True, 'sides must be a whole number from 1 to 100.'),
    (Setting(6, min=1, max=100), '6', 'sides must be a whole number from 1 to 100.'),
    (Setting(6), 2**70, 'sides must be a whole number from -9,007,199,254,740,991 to 9,007,199,254,740,991.'),
    (Setting(6), None, 'sides must be a whole number from'),
    (Setting(0.5, min=0.0, max=1.0), math.nan, 'sides must be a number from 0 to 1.'),
    (Setting(0.5), math.inf, 'sides must be a number.'),
    (Setting(True), 1, 'sides must be true or false.'),
    (Setting('calm', choices=('calm', 'bright')), 'loud', 'sides must be one of: calm, bright.'),
    (Setting('x'), 'x' * 1001, 'sides must be text of at most 1,000 characters.'),
    (Setting('x'), 'a\ud800b', 'sides contains a character that cannot be stored (a lone surrogate).'),
])
def test_a_value_that_does_not_fit_is_refused_with_what_would(spec: Setting, value: object, message: str) -> None:
    with pytest.raises(SettingError) as refused:
        spec.check(value, 'sides')
    assert encodable(refused.value).startswith(message)


# --- through the manager -------------------------------------------------------------------------

async def test_the_listing_shows_the_settings_in_effect_and_what_each_may_be(services: Services) -> None:
    await services.plugins.configure('Wikipedia', {'sentences': 1})
    wikipedia = (await services.plugins.get('Wikipedia')).to_dict()
    assert wikipedia['settings'] == {'sentences': 1}  # in effect, not the default 3
    assert wikipedia['setting_specs'] == {'sentences': {
        'type': 'int', 'default': 3, 'min': 1, 'max': 10, 'choices': None,
        'description': 'How many sentences of the article to show.'}}
    listed = {p.name: p.to_dict() for p in await services.plugins.list()}
    assert listed['Tuned']['settings'] == {'loud': False, 'volume': 0.5, 'voice': 'calm', 'name': 'Jarvis'}
    assert listed['Tuned']['setting_specs']['voice']['choices'] == ['calm', 'bright']
    json.dumps(listed, allow_nan=False)  # plain JSON, as the API sends it


@pytest.mark.parametrize(('plugin', 'values', 'message'), [
    ('Wikipedia', {'sentences': -5}, 'sentences must be a whole number from 1 to 10.'),
    ('Wikipedia', {'sentences': 2**70}, 'sentences must be a whole number from 1 to 10.'),
    ('Dice', {'sides': 2**70}, 'sides must be a whole number from -9,007,199,254,740,991 to'),
    ('Dice', {'sides': 1e308}, 'sides must be a whole number'),
    ('Wikipedia', {'sentences': 2, 'colour': 'red'}, 'The Wikipedia plugin has no setting "colour" (it has: sentences).'),
    ('Wikipedia', {'\ud800': 1}, 'The Wikipedia plugin has no setting "\ufffd" (it has: sentences).'),
    ('Tuned', {'name': 'x\udfffy'}, 'name contains a character that cannot be stored'),
    ('Tuned', {'voice': 'loud'}, 'voice must be one of: calm, bright.'),
    ('Tuned', ['loud'], 'settings must be an object of setting names and values'),
    ('Tuned', {str(n): n for n in range(51)}, 'At most 50 settings can be changed at once.'),
    ('Bad declaration', {'items': [1]}, 'The Bad declaration plugin has no setting "items" (it has: none).'),
])
async def test_invalid_settings_are_refused_and_nothing_is_stored(services: Services, plugin: str, values: object,
                                                                  message: str) -> None:
    with pytest.raises(PluginError) as refused:
        await services.plugins.configure(plugin, values)
    assert not isinstance(refused.value, PluginNotFound)
    assert encodable(refused.value).startswith(message)
    assert services.store.get(SETTINGS_KEY) is None  # all or nothing
    for info in await services.plugins.list():  # and every later call still works
        json.dumps(info.to_dict(), allow_nan=False)


async def test_an_unknown_or_malformed_name_is_a_clear_error(services: Services) -> None:
    with pytest.raises(PluginNotFound) as missing:
        await services.plugins.configure('No\ud800pe', {'x': 1})
    assert encodable(missing.value) == 'There is no plugin called "No\ufffdpe".'
    with pytest.raises(PluginNotFound):
        await services.plugins.get('Nope')
    for name in ('', '   ', 'x' * 101, ['Dice'], None):
        with pytest.raises(PluginError, match='A plugin name is required') as malformed:
            await services.plugins.toggle(name, True)
        assert not isinstance(malformed.value, PluginNotFound)
    with pytest.raises(PluginError, match='enabled must be true or false'):
        await services.plugins.toggle('Dice', 'yes')


async def test_a_change_reaches_the_plugin_and_every_window_and_survives_a_restart(settings: Settings) -> None:
    services = await started(settings)
    seen: list[events.PluginSettingsChanged] = []
    services.hub.subscribe(lambda e: seen.append(e.data), types=[events.PLUGIN_SETTINGS])
    try:
        info = await services.plugins.configure('Tuned', {'volume': 1, 'voice': 'bright'})
        assert info.settings == {'loud': False, 'volume': 1.0, 'voice': 'bright', 'name': 'Jarvis'}
        assert json.loads((await services.assistant.send('tuned')).text) == info.settings
        await services.plugins.configure('Tuned', {'loud': True})
        await eventually(lambda: len(seen) == 2)
        assert [s.settings['loud'] for s in seen] == [False, True]
        assert seen[-1].plugin == 'Tuned' and seen[-1].settings['voice'] == 'bright'
    finally:
        await services.stop()
    again = await started(settings)
    try:
        assert (await again.plugins.get('Tuned')).settings == \
            {'loud': True, 'volume': 1.0, 'voice': 'bright', 'name': 'Jarvis'}
    finally:
        await again.stop()


async def test_a_stored_value_that_no_longer_fits_is_kept_but_not_used(settings: Settings,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Values an older version stored unchecked (issue 11: a 2**70 made every later settings call fail)."""
    first = await started(settings)
    await first.store.set(SETTINGS_KEY, {'Wikipedia': {'sentences': 2**70}, 'Dice': {'sides': -5, 'colour': 'red'},
                                         'Tuned': {'volume': 'loud', 'voice': 'bright'}})
    await first.stop()
    caplog.set_level(logging.WARNING, logger='jarvis.plugins.manager')
    services = await started(settings)
    try:
        settings_now = {p.name: p.settings for p in await services.plugins.list()}
        assert settings_now['Wikipedia'] == {'sentences': 3}  # the default: 2**70 does not fit 1 to 10
        assert settings_now['Dice'] == {'sides': -5}  # a plain default: any whole number is the plugin's call
        assert settings_now['Tuned']['volume'] == 0.5 and settings_now['Tuned']['voice'] == 'bright'
        assert 'the stored value of sentences is not used' in caplog.text
        assert services.store.get(SETTINGS_KEY)['Wikipedia'] == {'sentences': 2**70}  # nothing stored is lost
        assert (await services.plugins.configure('Wikipedia', {'sentences': 2})).settings == {'sentences': 2}
    finally:
        await services.stop()


async def test_a_plugin_with_an_invalid_declaration_is_listed_with_its_error(services: Services) -> None:
    bad = await services.plugins.get('Bad declaration')
    assert bad.state == 'error' and 'declares an invalid setting' in bad.error and 'items' in bad.error
    with pytest.raises(PluginError, match='cannot be enabled'):
        await services.plugins.toggle('Bad declaration', True)
