"""The Models view's fit check: live free RAM and GPU memory, how many layers to offload so that a
model fits, and the processes that hold the memory when it does not (GPU processes from a stand-in for
NVML, the rest from the real process scan)."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from jarvis.config import Settings
from jarvis.hub import Hub
from jarvis.metrics.gpu import NvmlGpuReader
from jarvis.metrics.monitor import SystemMonitor
from jarvis.models import manager as manager_module
from jarvis.models.base import ModelError
from jarvis.models.default_model import DEFAULT_MODEL_FILE
from jarvis.models.fit import GPU_RESERVE_BYTES, MemoryHolder, MemoryNeed, plan_offload
from jarvis.models.gguf import read_gguf
from jarvis.models.manager import ModelManager
from jarvis.storage import SettingsStore
from jarvis.storage.startup import open_database

from .helpers.server import free_port

GiB = 2**30
MiB = 2**20
GEMMA = Path(DEFAULT_MODEL_FILE).stem


# --- the arithmetic --------------------------------------------------------------------------------

def test_a_model_that_fits_the_gpu_goes_there_whole() -> None:
    plan = plan_offload(4 * GiB, 32, 8 * GiB)
    assert plan is not None and plan.everything and (plan.gpu_layers, plan.ram_bytes) == (32, 0)


def test_the_layers_that_fit_the_free_gpu_memory_are_proposed() -> None:
    needed = 33 * 100 * MiB  # 32 layers and the part that stays with the CPU, 100 MiB each
    plan = plan_offload(needed, 32, GPU_RESERVE_BYTES + 1000 * MiB)
    assert plan is not None and plan.gpu_layers == 10 and plan.total_layers == 32
    assert plan.gpu_bytes == 1000 * MiB and plan.ram_bytes == needed - 1000 * MiB
    assert plan_offload(needed, 32, GPU_RESERVE_BYTES // 2).gpu_layers == 0, 'the reserve is not offered'
    assert plan_offload(needed, 32, None) is None and plan_offload(needed, None, 8 * GiB) is None


def test_the_verdict_counts_a_split_between_gpu_and_ram() -> None:
    needed = 33 * 100 * MiB
    split = MemoryNeed(needed, 2500 * MiB, GPU_RESERVE_BYTES + 1000 * MiB,
                       offload=plan_offload(needed, 32, GPU_RESERVE_BYTES + 1000 * MiB))
    assert split.fits and split.split_fits and split.short_bytes == 0
    assert 'fits with 10 of 32 layers on the GPU: set GPU layers to 10' in split.describe()
    short = MemoryNeed(needed, 1000 * MiB, GPU_RESERVE_BYTES + 1000 * MiB,
                       offload=plan_offload(needed, 32, GPU_RESERVE_BYTES + 1000 * MiB),
                       holders=(MemoryHolder('firefox', 42, int(1.3 * GiB)),))
    assert not short.fits and short.short_bytes == needed - 2000 * MiB
    assert short.describe().endswith('(does not fit: about 1.3 GiB more is needed; firefox (PID 42) holds 1.3 GiB).')
    assert MemoryNeed(2 * GiB, None, None).fits, 'nothing could be read: nothing is refused'
    assert not MemoryNeed(2 * GiB, GiB, None).fits and MemoryNeed(2 * GiB, GiB, 3 * GiB).fits


# --- the manager on live readings: a stand-in for NVML and the real process scan ---------------------

class HoldingNvml:
    """A pynvml stand-in: one GPU of 8 GiB of which ``used`` is taken, and the processes holding it."""

    nvmlMemory_v2 = 0x2000028
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, used: int, processes: list[tuple[int, int]]) -> None:
        self.used = used
        self.processes = processes

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return 'NVIDIA L4'

    def nvmlDeviceGetMemoryInfo(self, handle: int, version: int | None = None) -> SimpleNamespace:
        return SimpleNamespace(total=8 * GiB, used=self.used, free=8 * GiB - self.used)

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.processes]

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, handle: int) -> list[SimpleNamespace]:
        return []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]  # utilisation, temperature, power: refused
        raise RuntimeError(f'{name}: Not Supported')


@pytest.fixture
def gpu_hog() -> Iterator[subprocess.Popen]:
    """A real process that the stand-in NVML says holds GPU memory (the scan names it from /proc)."""
    process = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
async def machine_and_models(settings: Settings, models_dir: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[HoldingNvml, ModelManager]]:
    own = tmp_path / 'models'
    own.mkdir()
    (own / DEFAULT_MODEL_FILE).symlink_to(models_dir / DEFAULT_MODEL_FILE)
    monkeypatch.setenv('JARVIS_MODELS_DIR', str(own))
    settings = settings.with_changes(ollama_host=f'http://127.0.0.1:{free_port()}')
    db = open_database(settings.db_path).db
    hub = Hub()
    nvml = HoldingNvml(used=0, processes=[])
    machine = SystemMonitor(hub, db, gpus=NvmlGpuReader(nvml))
    models = ModelManager(hub, settings, SettingsStore(db), machine=machine)
    yield nvml, models
    await models.close()
    await machine.stop()
    db.close()


def _needed(models: ModelManager) -> int:
    """What the Gemma model needs, worked out apart (a catalog would take the GPU sample the test then changes)."""
    path = models.local_path(GEMMA)
    return manager_module.estimate_memory(read_gguf(path), path.stat().st_size, models.options.context_length)


def _gemma(catalog) -> MemoryNeed:  # type: ignore[no-untyped-def]
    need = next(m for m in catalog.models if m.name == GEMMA).memory
    assert need is not None
    return need


async def test_with_room_on_the_gpu_every_layer_is_proposed(machine_and_models, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    nvml, models = machine_and_models
    need = _gemma(await models.catalog())
    assert need.fits and need.vram_free_bytes == 8 * GiB, 'the GPU memory is read live'
    assert need.offload is not None and need.offload.everything and need.offload.total_layers == 18
    assert 'all 18 layers fit on the GPU' in need.describe() and not need.holders


async def test_a_model_that_fits_only_split_gets_its_gpu_layers(machine_and_models, monkeypatch,  # type: ignore[no-untyped-def]
                                                               gpu_hog: subprocess.Popen) -> None:
    nvml, models = machine_and_models
    needed = _needed(models)
    # the GPU has room for about half of the model besides the reserve, the RAM for a bit more than half
    nvml.used = 8 * GiB - GPU_RESERVE_BYTES - needed // 2
    nvml.processes = [(gpu_hog.pid, nvml.used)]
    monkeypatch.setattr(manager_module, 'free_memory_bytes', lambda: needed * 6 // 10)
    need = _gemma(await models.catalog())
    assert need.fits and need.split_fits and need.offload is not None
    layers = need.offload.gpu_layers
    assert 0 < layers < 18 and f'set GPU layers to {layers}' in need.describe()
    assert (await models.catalog()).to_dict()['models'][0]['memory']['offload']['gpu_layers'] == layers


async def test_a_model_that_does_not_fit_names_what_holds_the_memory(machine_and_models, monkeypatch,  # type: ignore[no-untyped-def]
                                                                   gpu_hog: subprocess.Popen) -> None:
    nvml, models = machine_and_models
    needed = _needed(models)
    nvml.used, nvml.processes = 8 * GiB - 10 * MiB, [(gpu_hog.pid, 7 * GiB)]
    monkeypatch.setattr(manager_module, 'free_memory_bytes', lambda: needed // 4)
    need = _gemma(await models.catalog())
    assert not need.fits and need.short_bytes > 0
    assert [(h.pid, h.bytes) for h in need.gpu_holders] == [(gpu_hog.pid, 7 * GiB)], 'the GPU memory holder'
    assert need.holders and all(h.bytes > 0 for h in need.holders)
    assert [h.bytes for h in need.holders] == sorted((h.bytes for h in need.holders), reverse=True)
    assert f'(PID {gpu_hog.pid}) holds 7.0 GiB of GPU memory' in need.describe()
    as_dict = (await models.catalog()).to_dict()['models'][0]['memory']
    assert as_dict['fits'] is False and as_dict['gpu_holders'][0]['pid'] == gpu_hog.pid
    with pytest.raises(ModelError) as refused:
        await models.load(GEMMA)
    assert 'does not fit the memory free now' in str(refused.value) and f'PID {gpu_hog.pid}' in str(refused.value)
    assert models.active is None
