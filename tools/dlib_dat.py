"""Read a dlib DNN ``.dat`` file (``dlib::serialize(net)``) in pure Python, without dlib.

Why: the embedder is converted from dlib's face-recognition ResNet, and the build must be able
to read its weights on any machine with numpy. The format (dlib/serialize.h, dlib/dnn/core.h,
layers.h, input.h, loss.h, tensor.h) is:

- an integer is a control byte (low nibble: byte count, bit 7: negative) followed by that many
  little-endian magnitude bytes; a ``bool`` is one byte ``'0'``/``'1'``;
- a float/double is two integers, a mantissa and a base-2 exponent (``mantissa * 2**exponent``;
  exponents 32000/32001/32002 mean +inf/-inf/nan);
- a string is its length (integer) followed by its bytes;
- a tensor (``resizable_tensor``) is version 2, ``num_samples, k, nr, nc`` and then raw
  little-endian float32 values; an ``alias_tensor`` is version 1 and the four sizes only;
- a network is written top-down as nested wrappers: ``add_loss_layer`` (version, loss details,
  subnet), ``add_layer`` (version 2, subnet, details, three bools, ``x_grad``,
  ``cached_output``, ``params_grad``), the ``add_layer`` over the input layer (version 2/3,
  input layer, details, bools, ``x_grad``, ``cached_output``, ``grad_final``, [sample
  expansion factor]), and ``add_tag_layer``/``add_skip_layer`` (version 1, subnet). Each layer's
  details begin with its own name/version string (``"con_4"``, ``"affine_"`` ...).

Tag and skip wrappers write nothing but a version, and ``add_prev_`` does not record which tag
it adds, so the wiring of the graph is not in the file: :func:`read_net` returns the layers in
forward (input-first) order, with ``kind="tag_or_skip"`` placeholders where wrappers sit, and the
caller matches that sequence against the known network definition.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: input layer names this reader understands (the strings dlib writes)
INPUT_LAYERS = ("input_rgb_image_sized", "input_rgb_image")
#: loss layer names this reader understands
LOSS_LAYERS = ("loss_metric_", "loss_metric_2")

_FLOAT_SPECIAL = {32000: math.inf, 32001: -math.inf, 32002: math.nan}


class DlibFormatError(ValueError):
    """The bytes are not a dlib serialization this reader understands."""


@dataclass
class Layer:
    """One computational layer (or a tag/skip placeholder) with its parameters as numpy."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {
            k: (f"array{tuple(v.shape)}" if isinstance(v, np.ndarray) else v)
            for k, v in self.params.items()
        }
        return f"Layer({self.kind!r}, {shown})"


@dataclass
class DlibNet:
    """A parsed network: the loss layer, the input layer and the layers input-first."""

    loss: Layer
    input: Layer
    layers: list[Layer]


class Reader:
    """A cursor over the bytes with one method per dlib primitive."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos} (wanted {n} bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def bool(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool byte {byte!r} at {self.pos - 1}")
        return byte == b"1"

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent in _FLOAT_SPECIAL:
            return _FLOAT_SPECIAL[exponent]
        return math.ldexp(mantissa, exponent)

    def string(self) -> str:
        length = self.int()
        if length < 0 or length > 1 << 20:
            raise DlibFormatError(f"bad string length {length} at {self.pos}")
        return self._take(length).decode("latin-1")

    def peek_string(self) -> str | None:
        """The string at the cursor if one plausibly starts there, without moving."""
        saved = self.pos
        try:
            text = self.string()
        except DlibFormatError:
            return None
        finally:
            self.pos = saved
        return text if text.isprintable() and text else None

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at {self.pos} (expected 2)")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at {self.pos} (expected 1)")
        return tuple(self.int() for _ in range(4))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# layer details, keyed by the name string each layer writes first


def _con(r: Reader) -> dict[str, Any]:
    params = r.tensor()
    num_filters, nr, nc = r.int(), r.int(), r.int()
    stride_y, stride_x = r.int(), r.int()
    padding_y, padding_x = r.int(), r.int()
    filters = r.alias_tensor()
    biases = r.alias_tensor()
    for _ in range(4):  # learning rate / weight decay multipliers
        r.float()
    flat = params.reshape(-1)
    n_filt = int(np.prod(filters))
    if filters[0] != num_filters or filters[2:] != (nr, nc) or n_filt + num_filters != flat.size:
        raise DlibFormatError(f"con_ sizes disagree: filters {filters}, params {flat.size}")
    return {
        "weights": flat[:n_filt].reshape(filters),  # (out, in, kh, kw)
        "bias": flat[n_filt:].reshape(biases[1]),
        "stride": (stride_y, stride_x),
        "padding": (padding_y, padding_x),
    }


def _affine(r: Reader) -> dict[str, Any]:
    params = r.tensor().reshape(-1)
    gamma = r.alias_tensor()
    r.alias_tensor()  # beta has gamma's shape
    mode = r.int()  # 0: CONV_MODE (per channel), 1: FC_MODE (per element)
    n = int(np.prod(gamma))
    if 2 * n != params.size:
        raise DlibFormatError(f"affine_ sizes disagree: gamma {gamma}, params {params.size}")
    return {"gamma": params[:n].copy(), "beta": params[n:].copy(), "mode": mode}


def _pool(r: Reader) -> dict[str, Any]:
    nr, nc, stride_y, stride_x = r.int(), r.int(), r.int(), r.int()
    padding_y, padding_x = r.int(), r.int()
    return {
        "size": (nr, nc),  # (0, 0) means "the whole input" (avg_pool_everything)
        "stride": (stride_y, stride_x),
        "padding": (padding_y, padding_x),
    }


def _fc(r: Reader) -> dict[str, Any]:
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor().reshape(-1)
    weights = r.alias_tensor()
    r.alias_tensor()  # biases (present but unused when bias_mode is FC_NO_BIAS)
    bias_mode = r.int()  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for _ in range(4):
        r.float()
    n = num_inputs * num_outputs
    if weights[:2] != (num_inputs, num_outputs):
        raise DlibFormatError(f"fc_ weight shape {weights} != ({num_inputs}, {num_outputs})")
    out: dict[str, Any] = {"weights": params[:n].reshape(num_inputs, num_outputs)}
    out["bias"] = params[n : n + num_outputs].copy() if bias_mode == 0 else None
    return out


def _nothing(r: Reader) -> dict[str, Any]:
    return {}


_DETAILS = {
    "con_4": ("con", _con),
    "con_5": ("con", _con),
    "affine_": ("affine", _affine),
    "relu_": ("relu", _nothing),
    "add_prev_": ("add_prev", _nothing),
    "max_pool_2": ("max_pool", _pool),
    "avg_pool_2": ("avg_pool", _pool),
    "fc_2": ("fc", _fc),
}


def _input_layer(r: Reader) -> Layer:
    name = r.string()
    if name == "input_rgb_image_sized":
        means = [r.float() for _ in range(3)]
        nr, nc = r.int(), r.int()
        return Layer("input", {"name": name, "mean_rgb": means, "size": (nr, nc)})
    if name == "input_rgb_image":
        means = [r.float() for _ in range(3)]
        return Layer("input", {"name": name, "mean_rgb": means, "size": None})
    raise DlibFormatError(f"unsupported input layer {name!r}")


def _details(r: Reader) -> Layer:
    at = r.pos
    name = r.string()
    if name not in _DETAILS:
        raise DlibFormatError(f"unsupported layer {name!r} at byte {at}")
    kind, parse = _DETAILS[name]
    return Layer(kind, parse(r))


def _skip_bools(r: Reader, n: int) -> None:
    for _ in range(n):
        r.bool()


def _node(r: Reader, out: list[Layer]) -> Layer | None:
    """Parse one wrapper and everything below it; append layers input-first to ``out``.

    Returns the input layer when this node is the bottom of the network.
    """
    version = r.int()
    head = r.peek_string()
    if head in INPUT_LAYERS:
        inp = _input_layer(r)
        if r.peek_string() in _DETAILS:  # add_layer<details, input>
            out.append(_details(r))
            _skip_bools(r, 3)
            r.tensor()  # x_grad
            r.tensor()  # cached_output
            r.tensor()  # grad_final
            if version >= 3:
                r.int()  # sample expansion factor
        else:  # add_tag_layer<ID, input>
            r.tensor()
            r.tensor()
            r.bool()
            if version >= 2:
                r.int()
            out.append(Layer("tag_or_skip"))
        return inp
    if version == 1:  # add_tag_layer / add_skip_layer: nothing but the subnet
        inp = _node(r, out)
        out.append(Layer("tag_or_skip"))
        return inp
    if version == 2:  # add_layer<details, subnet>
        inp = _node(r, out)
        out.append(_details(r))
        _skip_bools(r, 3)
        r.tensor()  # x_grad
        r.tensor()  # cached_output
        r.tensor()  # params_grad
        return inp
    raise DlibFormatError(f"unsupported wrapper version {version} at byte {r.pos}")


def _loss(r: Reader) -> Layer:
    name = r.string()
    if name == "loss_metric_2":
        return Layer("loss_metric", {"margin": r.float(), "dist_thresh": r.float()})
    if name == "loss_metric_":
        return Layer("loss_metric", {})
    raise DlibFormatError(f"unsupported loss layer {name!r}")


def read_net(path_or_bytes: str | Path | bytes) -> DlibNet:
    """Parse a serialized ``dlib::add_loss_layer`` network (e.g. the face ResNet ``.dat``)."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    r = Reader(data)
    version = r.int()
    if version != 1:
        raise DlibFormatError(f"add_loss_layer version {version} (expected 1)")
    loss = _loss(r)
    layers: list[Layer] = []
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 10_000))
    try:
        inp = _node(r, layers)
    finally:
        sys.setrecursionlimit(old_limit)
    if inp is None:
        raise DlibFormatError("no input layer found")
    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} trailing bytes after the network")
    return DlibNet(loss=loss, input=inp, layers=layers)


def _main(argv: list[str]) -> int:
    net = read_net(argv[0])
    print(net.loss)
    print(net.input)
    for i, layer in enumerate(net.layers):
        print(i, layer)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

__all__ = ["DlibFormatError", "DlibNet", "Layer", "Reader", "read_net"]
