"""Reads a GGUF file's header and metadata (not its tensors) to check and describe a model.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md — little-endian; magic "GGUF",
version, tensor count, metadata count, then typed key/value pairs.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b'GGUF'
MAX_STRING = 16 * 2**20  # longer strings mean a corrupt header (chat templates are a few KiB)
MAX_ARRAY = 4 * 2**20  # the vocabulary of large models stays far below
MAX_KV = 100_000

# llama.cpp's file types (LLAMA_FTYPE_*), the quantisation a model was saved in
FILE_TYPES = {
    0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K', 11: 'Q3_K_S',
    12: 'Q3_K_M', 13: 'Q3_K_L', 14: 'Q4_K_S', 15: 'Q4_K_M', 16: 'Q5_K_S', 17: 'Q5_K_M', 18: 'Q6_K',
    19: 'IQ2_XXS', 20: 'IQ2_XS', 21: 'Q2_K_S', 22: 'IQ3_XS', 23: 'IQ3_XXS', 24: 'IQ1_S', 25: 'IQ4_NL',
    26: 'IQ3_S', 27: 'IQ3_M', 28: 'IQ2_S', 29: 'IQ2_M', 30: 'IQ4_XS', 31: 'IQ1_M', 32: 'BF16',
    36: 'TQ1_0', 37: 'TQ2_0', 38: 'MXFP4',
}

_SCALARS = {0: '<B', 1: '<b', 2: '<H', 3: '<h', 4: '<I', 5: '<i', 6: '<f', 7: '<?', 10: '<Q', 11: '<q', 12: '<d'}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The file is not a readable GGUF model."""


@dataclass
class GGUFInfo:
    path: Path
    version: int
    tensor_count: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        return self.metadata.get('general.architecture')

    @property
    def name(self) -> str | None:
        return self.metadata.get('general.name')

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f'{self.architecture}.context_length')
        return int(value) if isinstance(value, int) else None

    @property
    def quantization(self) -> str | None:
        file_type = self.metadata.get('general.file_type')
        return FILE_TYPES.get(file_type, f'type {file_type}') if isinstance(file_type, int) else None

    @property
    def parameters(self) -> str | None:
        return self.metadata.get('general.size_label')

    @property
    def has_chat_template(self) -> bool:
        return bool(self.metadata.get('tokenizer.chat_template'))


def read_gguf(path: Path | str, *, skip_arrays: bool = True) -> GGUFInfo:
    """Read and check the header; raise GGUFError with a reason a user can act on."""
    path = Path(path)
    try:
        with path.open('rb') as stream:
            if stream.read(4) != MAGIC:
                raise GGUFError(f'{path.name} is not a GGUF model (the file does not start with "GGUF").')
            version = _read(stream, '<I')
            if version not in (2, 3):
                raise GGUFError(f'{path.name} uses GGUF version {version}, which is not supported (2 and 3 are).')
            tensor_count, kv_count = _read(stream, '<Q'), _read(stream, '<Q')
            if kv_count > MAX_KV:
                raise GGUFError(f'{path.name} has a corrupt header ({kv_count} metadata entries).')
            metadata = {}
            for _ in range(kv_count):
                key = _read_string(stream)
                metadata[key] = _read_value(stream, _read(stream, '<I'), skip_arrays)
    except GGUFError:
        raise
    except (struct.error, EOFError) as error:
        raise GGUFError(f'{path.name} is truncated or corrupt: its header ends early.') from error
    except UnicodeDecodeError as error:
        raise GGUFError(f'{path.name} has a corrupt header (a name is not UTF-8).') from error
    except OSError as error:
        raise GGUFError(f'{path.name} cannot be read: {error.strerror or error}.') from error
    return GGUFInfo(path=path, version=version, tensor_count=tensor_count, metadata=metadata)


def _read(stream: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _read_string(stream: BinaryIO) -> str:
    length = _read(stream, '<Q')
    if length > MAX_STRING:
        raise GGUFError('corrupt header: a string is implausibly long')
    data = stream.read(length)
    if len(data) != length:
        raise EOFError
    return data.decode('utf-8')


def _read_value(stream: BinaryIO, value_type: int, skip_arrays: bool) -> Any:
    if value_type in _SCALARS:
        return _read(stream, _SCALARS[value_type])
    if value_type == _STRING:
        return _read_string(stream)
    if value_type == _ARRAY:
        item_type, count = _read(stream, '<I'), _read(stream, '<Q')
        if count > MAX_ARRAY:
            raise GGUFError('corrupt header: an array is implausibly long')
        if skip_arrays and item_type in _SCALARS:  # token scores etc.: skip without decoding
            stream.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
            return f'<array of {count}>'
        items = [_read_value(stream, item_type, skip_arrays) for _ in range(count)]
        return f'<array of {count}>' if skip_arrays else items
    raise GGUFError(f'corrupt header: unknown value type {value_type}')
