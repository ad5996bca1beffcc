"""Reads a GGUF file's header, metadata and tensor table (not the tensors) to check and describe a model.

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md — little-endian; magic "GGUF",
version, tensor count, metadata count, typed key/value pairs, then one entry per tensor (name,
shape, type, offset), then the tensor data from the next multiple of ``general.alignment``.
The tensor table says how long the file must be, so a file cut short after its header (a download
or copy that stopped) is refused here with a sentence instead of by llama.cpp with a bare one.
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
MAX_TENSORS = 1_000_000
MAX_DIMS = 8  # ggml tensors have at most 4 dimensions
DEFAULT_ALIGNMENT = 32

# ggml's tensor types: (values per block, bytes per block), as ggml_blck_size and ggml_type_size
# report them (checked against llama-cpp-python 0.3.36's libggml); removed types are left out
TENSOR_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}

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
    data_end: int = 0  # the file must be at least this long to hold every tensor the table lists

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
    """Read and check the header and the tensor table; raise GGUFError with a reason a user can act on."""
    path = Path(path)
    try:
        # a large buffer: the vocabulary is hundreds of thousands of short strings, skipped one by one
        with path.open('rb', buffering=2**20) as stream:
            if stream.read(4) != MAGIC:
                raise GGUFError(f'{path.name} is not a GGUF model (the file does not start with "GGUF").')
            version = _read(stream, '<I')
            if version not in (2, 3):
                raise GGUFError(f'{path.name} uses GGUF version {version}, which is not supported (2 and 3 are).')
            tensor_count, kv_count = _read(stream, '<Q'), _read(stream, '<Q')
            if kv_count > MAX_KV:
                raise GGUFError(f'{path.name} has a corrupt header ({kv_count} metadata entries).')
            if tensor_count > MAX_TENSORS:
                raise GGUFError(f'{path.name} has a corrupt header ({tensor_count} tensors).')
            metadata = {}
            for _ in range(kv_count):
                key = _read_string(stream)
                metadata[key] = _read_value(stream, _read(stream, '<I'), skip_arrays)
            data_end = _tensor_data_end(stream, tensor_count, metadata.get('general.alignment', DEFAULT_ALIGNMENT))
            size = stream.seek(0, 2)
    except GGUFError as error:
        raise GGUFError(str(error).replace('corrupt header:', f'{path.name} has a corrupt header:')) from error
    except (struct.error, EOFError) as error:
        raise GGUFError(f'{path.name} is truncated or corrupt: its header ends early.') from error
    except UnicodeDecodeError as error:
        raise GGUFError(f'{path.name} has a corrupt header (a name is not UTF-8).') from error
    except OSError as error:
        raise GGUFError(f'{path.name} cannot be read: {error.strerror or error}.') from error
    if size < data_end:
        raise GGUFError(f'{path.name} is incomplete: it has {size:,} of the {data_end:,} bytes its tensors need '
                        '(a download or copy that stopped early?). Copy or download it again.')
    return GGUFInfo(path=path, version=version, tensor_count=tensor_count, metadata=metadata, data_end=data_end)


def _tensor_data_end(stream: BinaryIO, tensor_count: int, alignment: object) -> int:
    """Read the tensor table; return the offset in the file where the last tensor's data ends."""
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f'corrupt header: an alignment of {alignment!r} bytes')
    extent = 0  # from the start of the data section
    for _ in range(tensor_count):
        _skip_string(stream)  # the tensor's name
        dims = _read(stream, '<I')
        if dims > MAX_DIMS:
            raise GGUFError(f'corrupt header: a tensor with {dims} dimensions')
        values = 1
        for _ in range(dims):
            values *= _read(stream, '<Q')
        tensor_type, offset = _read(stream, '<I'), _read(stream, '<Q')
        block = TENSOR_TYPES.get(tensor_type)
        # a type this table does not know yet (a newer llama.cpp): its data starts at offset, at least
        size = -(-values // block[0]) * block[1] if block else 0
        extent = max(extent, offset + size)
    data_start = -(-stream.tell() // alignment) * alignment
    return data_start + extent


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


def _skip_string(stream: BinaryIO) -> None:
    length = _read(stream, '<Q')
    if length > MAX_STRING:
        raise GGUFError('corrupt header: a string is implausibly long')
    stream.seek(length, 1)


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
        if skip_arrays and item_type == _STRING:  # the vocabulary: skip without decoding
            for _ in range(count):
                _skip_string(stream)
            return f'<array of {count}>'
        items = [_read_value(stream, item_type, skip_arrays) for _ in range(count)]
        return f'<array of {count}>' if skip_arrays else items
    raise GGUFError(f'corrupt header: unknown value type {value_type}')
