"""The Models and Plugins views with two simulated users: one window acts, the other follows."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing.user import User

from jarvis.config import Settings
from jarvis.models.base import ModelError
from jarvis.models.default_model import DEFAULT_MODEL_FILE

from .conftest import Harness, simulate
from .helpers.files import read_only
from .helpers.waiting import eventually as wait_until
from .test_system_view import tooltip_of


async def eventually(condition: Callable[[], object], timeout: float = 15.0) -> None:
    """The shared wait, with more time: these tests load real models."""
    await wait_until(condition, timeout)


GEMMA = Path(DEFAULT_MODEL_FILE).stem


def one(user: User, marker: str):  # type: ignore[no-untyped-def]
    elements = user.find(marker=marker).elements
    assert len(elements) == 1, f'{len(elements)} elements marked {marker}'
    return next(iter(elements))


def element(user: User, marker: str):  # type: ignore[no-untyped-def]
    """The element with a marker, visible or not (user.find sees only visible ones)."""
    found = [e for e in user.client.elements.values() if marker in e._markers]  # pylint: disable=protected-access
    assert len(found) == 1, f'{len(found)} elements marked {marker}'
    return found[0]


def in_row(user: User, row_marker: str, marker: str):  # type: ignore[no-untyped-def]
    """An element of one row, visible or not."""
    row = one(user, row_marker)
    found = [e for e in row.descendants() if marker in e._markers]  # pylint: disable=protected-access
    assert len(found) == 1
    return found[0]


def click_in_row(user: User, row_marker: str, marker: str) -> None:
    with user.scope(marker=row_marker):
        user.find(marker=marker).click()


@pytest.fixture
async def gemma_app(settings: Settings, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    own = tmp_path / 'models'
    own.mkdir()
    (own / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    (own / 'broken.gguf').write_text('not a model')
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(own))
    async with simulate(settings) as harness:
        yield harness


async def test_a_load_in_one_window_updates_the_other(gemma_app: Harness) -> None:
    alice, bob = gemma_app.new_user(), gemma_app.new_user()
    await alice.open('/models')
    await bob.open('/models')
    row = f'model-row:local:{GEMMA}'
    await eventually(lambda: bob.find(marker=row).elements)
    await eventually(lambda: alice.find(marker=row).elements)
    assert in_row(bob, row, 'model-state').text == 'available'
    assert one(bob, 'active-model').text == 'No model loaded'
    assert in_row(bob, row, 'model-memory').text.startswith('Needs about ') and '(fits)' in in_row(bob, row, 'model-memory').text
    assert one(bob, 'memory-free').text.startswith('Free now: ') and '(no GPU)' in one(bob, 'memory-free').text
    click_in_row(alice, row, 'model-load')
    await eventually(lambda: in_row(bob, row, 'model-state').text == 'loaded')
    # the row's state and the model_loaded event are two events: wait for the second one too
    await eventually(lambda: one(bob, 'active-model').text == f'Model: {GEMMA}')
    assert one(bob, 'header-model').text == f'Model: {GEMMA}'
    assert in_row(bob, row, 'model-unload').visible and not in_row(bob, row, 'model-load').visible
    click_in_row(bob, row, 'model-unload')
    await eventually(lambda: in_row(alice, row, 'model-state').text == 'available')
    await eventually(lambda: one(alice, 'header-model').text == 'No model loaded')


async def test_a_broken_file_shows_its_error(gemma_app: Harness) -> None:
    user = gemma_app.new_user()
    await user.open('/models')
    row = 'model-row:local:broken'
    await eventually(lambda: user.find(marker=row).elements)
    assert in_row(user, row, 'model-state').text == 'error'
    assert 'not a GGUF model' in in_row(user, row, 'model-error').text
    await user.should_see(marker='ollama-retry')  # no Ollama here: it says so and offers a retry
    assert 'not running' in one(user, 'ollama-status').text


async def test_a_default_model_that_cannot_be_installed_says_what_to_do(settings: Settings, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / 'models'
    folder.mkdir()
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(folder))
    with read_only(folder):
        async with simulate(settings.with_changes(load_default_model=True)) as harness:
            await harness.services.model_ready()
            user = harness.new_user()
            await user.open('/models')
            row = f'model-row:local:{GEMMA}'
            await eventually(lambda: user.find(marker=row).elements)
            assert in_row(user, row, 'model-state').text == 'error'
            assert 'could not be installed' in in_row(user, row, 'model-error').text
            assert 'writable' in in_row(user, row, 'model-error').text
            chat = harness.new_user()
            await chat.open('/chat')
            banner = element(chat, 'no-model-banner')
            assert banner.visible and 'could not be installed' in banner.text and 'no download' not in banner.text


async def test_the_chat_banner_follows_a_failed_install(settings: Settings, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A window open before the install fails stops promising the default model when it does."""
    folder = tmp_path / 'models'
    folder.mkdir()
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(folder))
    async with simulate(settings) as harness:
        chat = harness.new_user()
        await chat.open('/chat')
        banner = element(chat, 'no-model-banner')
        assert 'needs no download' in banner.text, 'the default model can be installed'
        with read_only(folder), pytest.raises(ModelError, match='could not be installed'):
            await harness.services.models.load(GEMMA)  # as the Load button of another window does
        await eventually(lambda: 'could not be installed' in banner.text)
        assert 'needs no download' not in banner.text


async def test_a_toggle_in_one_window_flips_the_switch_in_the_other(jarvis: Harness) -> None:
    alice, bob = jarvis.new_user(), jarvis.new_user()
    await alice.open('/plugins')
    await bob.open('/plugins')
    name = 'Calculator'
    assert one(bob, f'plugin-switch:{name}').value is True
    one(alice, f'plugin-switch:{name}').set_value(False)
    await eventually(lambda: one(bob, f'plugin-switch:{name}').value is False)
    assert one(bob, f'plugin-state:{name}').text == 'disabled'
    assert jarvis.services.plugins.entries[name].enabled is False
    assert jarvis.services.store.get('plugins.enabled')[name] is False
    one(bob, f'plugin-switch:{name}').set_value(True)
    await eventually(lambda: one(alice, f'plugin-switch:{name}').value is True)
    assert one(alice, f'plugin-state:{name}').text == 'enabled'


@pytest.fixture
async def ollama_app(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from .helpers.fake_ollama import FakeModel, FakeOllama

    monkeypatch.setenv('JARVIS_MODELS_DIR', str(tmp_path / 'models'))
    with FakeOllama([FakeModel('tinyllama:latest')], library=[FakeModel('qwen2:0.5b')]) as ollama:
        ollama.pull_delay = 0.05
        async with simulate(settings.with_changes(ollama_host=ollama.url)) as harness:
            yield harness, ollama


async def test_pull_shows_progress_in_every_window_and_lists_the_model(ollama_app) -> None:  # type: ignore[no-untyped-def]
    harness, ollama = ollama_app
    alice, bob = harness.new_user(), harness.new_user()
    await alice.open('/models')
    await bob.open('/models')
    await eventually(lambda: bob.find(marker='model-row:ollama:tinyllama:latest').elements)
    assert one(bob, 'ollama-status').text == f'running at {ollama.url}'
    assert not element(bob, 'ollama-retry').visible
    alice.find(marker='pull-name').type('qwen2:0.5b')
    alice.find(marker='pull-button').click()
    await eventually(lambda: element(bob, 'pull-progress').visible)  # bob sees alice's pull
    await eventually(lambda: 'qwen2:0.5b: pulling' in one(bob, 'pull-status').text)
    await eventually(lambda: one(bob, 'pull-status').text == 'qwen2:0.5b: pulled')
    await eventually(lambda: bob.find(marker='model-row:ollama:qwen2:0.5b').elements)
    assert not element(bob, 'pull-progress').visible
    click_in_row(bob, 'model-row:ollama:qwen2:0.5b', 'model-load')
    await eventually(lambda: in_row(alice, 'model-row:ollama:qwen2:0.5b', 'model-state').text == 'loaded')
    assert 'qwen2:0.5b' in ollama.running


async def test_icon_only_buttons_of_the_models_view_have_accessible_names(gemma_app: Harness) -> None:
    user = gemma_app.new_user()
    await user.open('/models')
    await eventually(lambda: user.find(marker=f'model-row:local:{GEMMA}').elements)
    named = {}
    for button in user.find(kind=ui.button).elements:
        if button.props.get('icon') and not button.props.get('label') and not button.text:
            assert button.props.get('aria-label'), f'{button.props["icon"]} has no accessible name'
            assert tooltip_of(button), f'{button.props["icon"]} has no tooltip'
            named[button.props['aria-label']] = button
    assert f'Delete {GEMMA}' in named and 'Delete broken' in named
