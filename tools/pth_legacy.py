"""Read a legacy ``torch.save(state_dict)`` file (PyTorch < 1.6, non-zip) without torch.

Why: the anti-spoofing models are converted from PyTorch checkpoints, and the build must read
their weights on any machine with numpy, without PyTorch in the dev venv. The legacy format
(``torch/serialization.py``, ``_legacy_save``) is five pickles one after the other:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the protocol version, 1001;
3. system info (``little_endian``, type sizes);
4. the object itself: here an ``OrderedDict`` of tensors, each pickled as
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``
   whose ``storage`` is a *persistent id* ``('storage', torch.FloatStorage, key, location,
   numel, view_metadata)``;
5. the list of storage keys, in the order their data follows;

then, for each key, the storage's element count (little-endian int64) and its raw
little-endian bytes. :func:`read_state_dict` resolves only the globals a state_dict needs
(``collections.OrderedDict``, ``_rebuild_tensor_v2``, the storage types) and refuses any other,
so unpickling cannot run foreign code.
"""

from __future__ import annotations

import collections
import hashlib
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class PthFormatError(ValueError):
    """The file is not a legacy torch.save state_dict this reader understands."""


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _TensorRef:
    storage: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: str, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals a state_dict needs; everything else is refused."""

    def __init__(self, fh: Any) -> None:
        super().__init__(fh)
        self.storages: dict[str, tuple[str, int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise PthFormatError(f"refusing to load {module}.{name} from a state_dict pickle")

    def persistent_load(self, pid: Any) -> str:
        # ('storage', storage_type, key, location, numel, view_metadata)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise PthFormatError(f"unexpected persistent id {pid!r}")
        _, stype, key, _location, numel, view = pid
        if view is not None:
            raise PthFormatError("storage views are not supported")
        self.storages[str(key)] = (stype.name, int(numel))
        return str(key)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy ``torch.save(state_dict)`` file as float32/int64 numpy arrays.

    A ``module.`` prefix (``nn.DataParallel``) is removed from every key.
    """
    with open(path, "rb") as fh:
        try:
            if pickle.load(fh) != _LEGACY_MAGIC:
                raise PthFormatError(f"{path}: not a legacy torch.save file (magic number)")
            if pickle.load(fh) != _LEGACY_PROTOCOL:
                raise PthFormatError(f"{path}: unknown torch.save protocol version")
            info = pickle.load(fh)
            if not info.get("little_endian", False):
                raise PthFormatError(f"{path}: big-endian files are not supported")
            unpickler = _Unpickler(fh)
            state = unpickler.load()
            keys = pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise PthFormatError(f"{path}: {exc}") from exc
        data: dict[str, np.ndarray] = {}
        for key in keys:
            stype, numel = unpickler.storages[key]
            dtype = np.dtype(_STORAGE_DTYPES[stype])
            (count,) = struct.unpack("<q", fh.read(8))
            if count != numel:
                raise PthFormatError(
                    f"{path}: storage {key} has {count} elements, expected {numel}"
                )
            raw = fh.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise PthFormatError(f"{path}: storage {key} is truncated")
            data[key] = np.frombuffer(raw, dtype=dtype)
        if fh.read(1):
            raise PthFormatError(f"{path}: unexpected bytes after the last storage")
    if not isinstance(state, dict):
        raise PthFormatError(f"{path}: the pickle is a {type(state).__name__}, not a state_dict")
    out: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise PthFormatError(f"{path}: {name} is not a tensor")
        flat = data[ref.storage]
        strides = [s * flat.itemsize for s in ref.stride]
        view = np.lib.stride_tricks.as_strided(flat[ref.offset :], ref.size, strides)
        out[name.removeprefix("module.")] = np.array(view)  # a contiguous copy
    return out


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
