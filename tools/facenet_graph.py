"""facenet-pytorch's ``InceptionResnetV1`` as data: its expected weights, and a TensorFlow rebuild.

The network is written down once, as :func:`walk`, which calls a *backend* for every layer in
the order of ``InceptionResnetV1.forward``. Two backends run it:

* :class:`ShapeBackend` records the state_dict keys and shapes the network has, so a checkpoint
  is validated against exactly the layers the graph will use (``tools/facenet_checkpoint.py``);
* :class:`TFBackend` builds the TensorFlow graph from a validated state_dict, folding as it goes:
  every ``BasicConv2d``'s batch norm (eps 0.001, as facenet-pytorch hard-codes) into its
  convolution, each residual block's ``scale`` into the block's last convolution, the final
  ``BatchNorm1d`` into ``last_linear``, and the input normalisation ``(x - 127.5) / 128`` into
  the first convolution (exact: it has no padding). The model therefore takes the raw 0..255
  RGB chip, like the dlib embedder, and the INT8 input is the uint8 chip itself (scale 1).

Padding: every convolution of this network is either unpadded (``VALID``) or stride 1 with
``padding = kernel // 2`` per axis (``SAME`` gives the same symmetric pad), so no explicit PAD
op is needed. Dropout is the identity at inference and ``logits`` is not part of the embedding
network, so neither appears. The output is L2-normalised, as ``F.normalize`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

CHIP_SIZE = 160
EMBEDDING_SIZE = 512
#: facenet-pytorch's BatchNorm eps ("value found in tensorflow"), not stored in a state_dict
BN_EPS = 1e-3
#: the published input normalisation of facenet-pytorch (``fixed_image_standardization``)
INPUT_MEAN = 127.5
INPUT_SCALE = 128.0
#: (module name, count, scale) of the three repeated residual stages
STAGES = (("repeat_1", 5, 0.17), ("repeat_2", 10, 0.10), ("repeat_3", 5, 0.20))

Kernel = tuple[int, int]


def _k(k: int | Kernel) -> Kernel:
    return (k, k) if isinstance(k, int) else k


class Backend:
    """What :func:`walk` needs from a backend; ``x`` is whatever tensor type it uses."""

    def basic(self, name: str, x: Any, cin: int, cout: int, k: Kernel, stride: int, same: bool):
        raise NotImplementedError

    def conv_bias(self, name: str, x: Any, cin: int, cout: int, scale: float):
        raise NotImplementedError

    def max_pool(self, x: Any):
        raise NotImplementedError

    def concat(self, xs: list[Any]):
        raise NotImplementedError

    def residual(self, x: Any, branch: Any, relu: bool):
        raise NotImplementedError

    def embedding(self, x: Any):
        raise NotImplementedError


def _basic(
    b: Backend, name: str, x: Any, cin: int, cout: int, k: int | Kernel, stride=1, same=False
):
    return b.basic(name, x, cin, cout, _k(k), stride, same)


def _seq(b: Backend, name: str, x: Any, layers: list[tuple]) -> Any:
    """An ``nn.Sequential`` of BasicConv2d: keys ``name.0``, ``name.1``, ..."""
    for i, (cin, cout, k, stride, same) in enumerate(layers):
        x = _basic(b, f"{name}.{i}", x, cin, cout, k, stride, same)
    return x


def _block35(b: Backend, name: str, x: Any, scale: float) -> Any:
    x0 = _basic(b, f"{name}.branch0", x, 256, 32, 1)
    x1 = _seq(b, f"{name}.branch1", x, [(256, 32, 1, 1, False), (32, 32, 3, 1, True)])
    x2 = _seq(
        b,
        f"{name}.branch2",
        x,
        [(256, 32, 1, 1, False), (32, 32, 3, 1, True), (32, 32, 3, 1, True)],
    )
    out = b.conv_bias(f"{name}.conv2d", b.concat([x0, x1, x2]), 96, 256, scale)
    return b.residual(x, out, relu=True)


def _block17(b: Backend, name: str, x: Any, scale: float) -> Any:
    x0 = _basic(b, f"{name}.branch0", x, 896, 128, 1)
    x1 = _seq(
        b,
        f"{name}.branch1",
        x,
        [(896, 128, 1, 1, False), (128, 128, (1, 7), 1, True), (128, 128, (7, 1), 1, True)],
    )
    out = b.conv_bias(f"{name}.conv2d", b.concat([x0, x1]), 256, 896, scale)
    return b.residual(x, out, relu=True)


def _block8(b: Backend, name: str, x: Any, scale: float, relu: bool = True) -> Any:
    x0 = _basic(b, f"{name}.branch0", x, 1792, 192, 1)
    x1 = _seq(
        b,
        f"{name}.branch1",
        x,
        [(1792, 192, 1, 1, False), (192, 192, (1, 3), 1, True), (192, 192, (3, 1), 1, True)],
    )
    out = b.conv_bias(f"{name}.conv2d", b.concat([x0, x1]), 384, 1792, scale)
    return b.residual(x, out, relu=relu)


def _mixed_6a(b: Backend, x: Any) -> Any:
    x0 = _basic(b, "mixed_6a.branch0", x, 256, 384, 3, 2)
    x1 = _seq(
        b,
        "mixed_6a.branch1",
        x,
        [(256, 192, 1, 1, False), (192, 192, 3, 1, True), (192, 256, 3, 2, False)],
    )
    return b.concat([x0, x1, b.max_pool(x)])


def _mixed_7a(b: Backend, x: Any) -> Any:
    x0 = _seq(b, "mixed_7a.branch0", x, [(896, 256, 1, 1, False), (256, 384, 3, 2, False)])
    x1 = _seq(b, "mixed_7a.branch1", x, [(896, 256, 1, 1, False), (256, 256, 3, 2, False)])
    x2 = _seq(
        b,
        "mixed_7a.branch2",
        x,
        [(896, 256, 1, 1, False), (256, 256, 3, 1, True), (256, 256, 3, 2, False)],
    )
    return b.concat([x0, x1, x2, b.max_pool(x)])


def walk(b: Backend, x: Any) -> Any:
    """``InceptionResnetV1.forward`` (``classify=False``), layer by layer, on backend ``b``."""
    x = _basic(b, "conv2d_1a", x, 3, 32, 3, 2)
    x = _basic(b, "conv2d_2a", x, 32, 32, 3)
    x = _basic(b, "conv2d_2b", x, 32, 64, 3, same=True)
    x = b.max_pool(x)
    x = _basic(b, "conv2d_3b", x, 64, 80, 1)
    x = _basic(b, "conv2d_4a", x, 80, 192, 3)
    x = _basic(b, "conv2d_4b", x, 192, 256, 3, 2)
    blocks: dict[str, Callable[..., Any]] = {
        "repeat_1": _block35,
        "repeat_2": _block17,
        "repeat_3": _block8,
    }
    for stage, count, scale in STAGES:
        for i in range(count):
            x = blocks[stage](b, f"{stage}.{i}", x, scale)
        if stage == "repeat_1":
            x = _mixed_6a(b, x)
        elif stage == "repeat_2":
            x = _mixed_7a(b, x)
    x = _block8(b, "block8", x, 1.0, relu=False)
    return b.embedding(x)


# --------------------------------------------------------------------------------------------
# the expected state_dict


class ShapeBackend(Backend):
    """Collects ``{key: shape}`` of the embedding network's state_dict (no tensors involved)."""

    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}

    def _bn(self, name: str, n: int) -> None:
        for key in ("weight", "bias", "running_mean", "running_var"):
            self.shapes[f"{name}.{key}"] = (n,)
        self.shapes[f"{name}.num_batches_tracked"] = ()

    def basic(self, name, x, cin, cout, k, stride, same):
        self.shapes[f"{name}.conv.weight"] = (cout, cin, *k)
        self._bn(f"{name}.bn", cout)

    def conv_bias(self, name, x, cin, cout, scale):
        self.shapes[f"{name}.weight"] = (cout, cin, 1, 1)
        self.shapes[f"{name}.bias"] = (cout,)

    def max_pool(self, x):
        return None

    def concat(self, xs):
        return None

    def residual(self, x, branch, relu):
        return None

    def embedding(self, x):
        self.shapes["last_linear.weight"] = (EMBEDDING_SIZE, 1792)
        self._bn("last_bn", EMBEDDING_SIZE)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of an ``InceptionResnetV1(classify=False)`` state_dict (no ``logits``), with its shape."""
    backend = ShapeBackend()
    walk(backend, None)
    return backend.shapes


# --------------------------------------------------------------------------------------------
# folding and the TensorFlow graph

State = Mapping[str, np.ndarray]


def fold_bn(state: State, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(per-channel scale, shift) of a frozen batch norm: ``y = x * scale + shift``."""
    gamma = state[f"{name}.weight"].astype(np.float64)
    beta = state[f"{name}.bias"].astype(np.float64)
    mean = state[f"{name}.running_mean"].astype(np.float64)
    var = state[f"{name}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    return scale, beta - mean * scale


def folded_conv(state: State, name: str, first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A BasicConv2d as one convolution: TF kernel ``(kh, kw, in, out)`` and bias, float32.

    ``first``: also fold the input normalisation, so the convolution takes 0..255 pixels.
    Exact only because that convolution is unpadded (a padded border would see 0, not 127.5).
    """
    w = state[f"{name}.conv.weight"].astype(np.float64)  # (out, in, kh, kw)
    scale, shift = fold_bn(state, f"{name}.bn")
    w = w * scale[:, None, None, None]
    bias = shift
    if first:
        bias = bias - w.sum(axis=(1, 2, 3)) * (INPUT_MEAN / INPUT_SCALE)
        w = w / INPUT_SCALE
    return w.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)


def folded_linear(state: State) -> tuple[np.ndarray, np.ndarray]:
    """``last_linear`` (no bias) followed by ``last_bn`` as ``x @ W + b``: W is ``(1792, 512)``."""
    w = state["last_linear.weight"].astype(np.float64)  # (512, 1792)
    scale, shift = fold_bn(state, "last_bn")
    return (w * scale[:, None]).T.astype(np.float32), shift.astype(np.float32)


class TFBackend(Backend):
    """Builds the folded graph with TensorFlow ops (inside a ``tf.function``)."""

    def __init__(self, tf: Any, state: State) -> None:
        self.tf = tf
        self.state = state
        self._first = True
        self._consts: dict[str, tuple[Any, Any]] = {}

    def _const(self, name: str, make: Callable[[], tuple[np.ndarray, np.ndarray]]):
        """Weights as TF constants, folded once and reused on every trace."""
        if name not in self._consts:
            w, b = make()
            self._consts[name] = (self.tf.constant(w), self.tf.constant(b))
        return self._consts[name]

    def basic(self, name, x, cin, cout, k, stride, same):
        first, self._first = self._first, False
        w, b = self._const(name, lambda: folded_conv(self.state, name, first))
        y = self.tf.nn.conv2d(x, w, strides=stride, padding="SAME" if same else "VALID")
        return self.tf.nn.relu(self.tf.nn.bias_add(y, b))

    def conv_bias(self, name, x, cin, cout, scale):
        def make() -> tuple[np.ndarray, np.ndarray]:
            w = self.state[f"{name}.weight"].astype(np.float64) * scale
            b = self.state[f"{name}.bias"].astype(np.float64) * scale
            return w.transpose(2, 3, 1, 0).astype(np.float32), b.astype(np.float32)

        w, b = self._const(name, make)
        return self.tf.nn.bias_add(self.tf.nn.conv2d(x, w, strides=1, padding="VALID"), b)

    def max_pool(self, x):
        return self.tf.nn.max_pool2d(x, 3, 2, "VALID")

    def concat(self, xs):
        return self.tf.concat(xs, axis=3)

    def residual(self, x, branch, relu):
        y = self.tf.add(branch, x)
        return self.tf.nn.relu(y) if relu else y

    def embedding(self, x):
        tf = self.tf
        h, w = x.shape[1], x.shape[2]
        x = tf.reshape(tf.nn.avg_pool2d(x, (h, w), 1, "VALID"), [-1, x.shape[3]])
        weights, bias = self._const("last", lambda: folded_linear(self.state))
        return tf.math.l2_normalize(tf.nn.bias_add(tf.matmul(x, weights), bias), axis=1)


def make_module(state: State) -> Any:
    """A ``tf.Module``: ``(N, 160, 160, 3)`` float 0..255 RGB in, ``(N, 512)`` unit vectors out."""
    import tensorflow as tf

    class FaceNet(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="facenet_inception_resnet_v1")
            self.backend = TFBackend(tf, state)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, CHIP_SIZE, CHIP_SIZE, 3], tf.float32, name="chip_rgb")
            ]
        )
        def __call__(self, x: Any) -> Any:
            self.backend._first = True
            return tf.identity(walk(self.backend, x), name="embedding")

    return FaceNet()
