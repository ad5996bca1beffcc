"""The Plugins view with two simulated users: settings are shown as in effect, checked before they
are stored, and a change in one window (or by a script) shows in the other."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nicegui.testing.user import User

from jarvis.config import Settings
from jarvis.plugins.base import Plugin, PluginContext, Setting
from jarvis.plugins.builtin import WikipediaPlugin

from .conftest import Harness, simulate
from .helpers.waiting import eventually


class Greeter(Plugin):
    name = 'Greeter'
    description = 'Says hello: "greet me".'
    patterns = [r'\bgreet me\b']
    settings = {
        'loud': False,
        'greeting': Setting('hello', choices=('hello', 'hi', 'good day'), description='How to start.'),
        'who': 'Tony',
        'volume': Setting(0.5, min=0.0, max=1.0),
        'times': Setting(1, min=1, max=5, description='How often to say it.'),
    }

    async def handle(self, message: str, context: PluginContext) -> str | None:
        values = context.plugin_settings
        text = ' '.join([f'{values["greeting"]}, {values["who"]}'] * values['times'])
        return text.upper() if values['loud'] else text


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Harness]:
    async with simulate(settings, plugins=[Greeter, WikipediaPlugin]) as harness:
        yield harness


def element(user: User, marker: str) -> Any:
    found = user.find(marker=marker).elements
    assert len(found) == 1, f'{len(found)} elements marked {marker}'
    return next(iter(found))


async def opened(harness: Harness) -> tuple[User, User]:
    alice, bob = harness.new_user(), harness.new_user()
    for user in (alice, bob):
        await user.open('/plugins')
        await eventually(lambda user=user: element(user, 'plugin-switch:Greeter'))
    return alice, bob


def value_of(user: User, marker: str) -> Callable[[], object]:
    return lambda: element(user, marker).value


async def test_settings_show_as_in_effect_with_a_field_for_each_kind(app: Harness) -> None:
    await app.services.plugins.configure('Wikipedia', {'sentences': 2})  # changed before the window opened
    alice, _ = await opened(app)
    assert element(alice, 'plugin-setting:Wikipedia:sentences').value == 2
    assert element(alice, 'plugin-setting:Greeter:loud').value is False
    assert element(alice, 'plugin-setting:Greeter:greeting').value == 'hello'
    assert element(alice, 'plugin-setting:Greeter:who').value == 'Tony'
    assert element(alice, 'plugin-setting:Greeter:volume').value == 0.5
    assert element(alice, 'plugin-setting:Greeter:times').value == 1
    assert element(alice, 'plugin-setting:Greeter:times').props['hint'] == 'How often to say it.'  # as text


async def test_a_setting_changed_in_one_window_shows_in_the_other(app: Harness) -> None:
    alice, bob = await opened(app)
    element(alice, 'plugin-setting:Wikipedia:sentences').set_value(1)
    alice.find(marker='plugin-settings-save:Wikipedia').click()
    await eventually(lambda: value_of(bob, 'plugin-setting:Wikipedia:sentences')() == 1)
    assert (await app.services.plugins.get('Wikipedia')).settings == {'sentences': 1}

    element(bob, 'plugin-setting:Greeter:loud').set_value(True)
    element(bob, 'plugin-setting:Greeter:greeting').set_value('good day')
    element(bob, 'plugin-setting:Greeter:who').set_value('Pepper')
    element(bob, 'plugin-setting:Greeter:times').set_value(2.0)  # a number field holds a float
    bob.find(marker='plugin-settings-save:Greeter').click()
    await eventually(lambda: value_of(alice, 'plugin-setting:Greeter:who')() == 'Pepper')
    assert value_of(alice, 'plugin-setting:Greeter:loud')() is True
    assert value_of(alice, 'plugin-setting:Greeter:greeting')() == 'good day'
    assert value_of(alice, 'plugin-setting:Greeter:times')() == 2
    assert (await app.services.assistant.send('greet me')).text == 'GOOD DAY, PEPPER GOOD DAY, PEPPER'


async def test_a_value_out_of_range_is_refused_and_nothing_is_stored(app: Harness) -> None:
    alice, bob = await opened(app)
    element(alice, 'plugin-setting:Wikipedia:sentences').set_value(-5)
    alice.find(marker='plugin-settings-save:Wikipedia').click()
    error = 'sentences must be a whole number from 1 to 10.'
    await eventually(lambda: element(alice, 'plugin-settings-error:Wikipedia').text == error)
    assert element(alice, 'plugin-settings-error:Wikipedia').visible
    assert element(alice, 'plugin-setting:Wikipedia:sentences').error == error  # said under the field too
    assert (await app.services.plugins.get('Wikipedia')).settings == {'sentences': 3}
    assert app.services.store.get('plugins.settings') is None
    assert value_of(bob, 'plugin-setting:Wikipedia:sentences')() == 3
    element(alice, 'plugin-setting:Wikipedia:sentences').set_value(4)  # corrected: the error goes away
    alice.find(marker='plugin-settings-save:Wikipedia').click()
    await eventually(lambda: value_of(bob, 'plugin-setting:Wikipedia:sentences')() == 4)
    await alice.should_not_see(marker='plugin-settings-error:Wikipedia')


async def test_a_change_by_a_script_shows_in_every_window(app: Harness) -> None:
    alice, bob = await opened(app)
    await app.services.plugins.configure('Greeter', {'times': 5, 'volume': 1})
    for user in (alice, bob):
        await eventually(lambda user=user: value_of(user, 'plugin-setting:Greeter:times')() == 5)
        assert value_of(user, 'plugin-setting:Greeter:volume')() == 1.0


async def test_the_switch_still_follows_in_every_window(app: Harness) -> None:
    alice, bob = await opened(app)
    element(alice, 'plugin-switch:Greeter').set_value(False)
    await eventually(lambda: element(bob, 'plugin-switch:Greeter').value is False)
    assert element(bob, 'plugin-state:Greeter').text == 'disabled'
    assert (await app.services.plugins.get('Greeter')).enabled is False
