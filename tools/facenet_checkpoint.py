"""Read a facenet-pytorch ``InceptionResnetV1`` checkpoint and keep exactly its embedding network.

What people actually have is rarely a bare ``model.state_dict()`` of the embedding network:

* a training script's dict wrapping it (``{"state_dict": ...}``, ``{"model": ...}``,
  ``{"model_state_dict": ...}``, with ``epoch``, ``optimizer`` and the like beside it);
* keys prefixed ``module.`` by ``nn.DataParallel``/``DistributedDataParallel``;
* the network inside a bigger module (``backbone.``, ``0.`` of an ``nn.Sequential``);
* a classifier head: facenet-pytorch's own ``logits`` (``classify=True`` or the pretrained
  8631/10575-class layer) or a transfer-learning ``nn.Linear`` added on top (``fc``,
  ``classifier``, ``head``, ``1.`` ...), whose first layer takes the 512-D embedding.

:func:`read_checkpoint` unwraps all of that, drops the head (it classifies the training
people; the door needs the embedding in front of it) and then insists that what remains has
exactly the keys and shapes of :func:`tools.facenet_graph.expected_shapes`. Anything else --
another architecture, a missing layer, a wrong shape, an unknown extra tensor, NaN weights --
is refused with a :class:`CheckpointError` naming what is wrong, because a converter that
silently ignored a tensor would produce a model that embeds faces wrongly without a sign.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate.vision.manifest import file_sha256
from tools.facenet_graph import EMBEDDING_SIZE, expected_shapes

#: dict keys under which training scripts commonly store the state_dict
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
#: the first layer's weight: where the embedding network starts inside a bigger module
ANCHOR = "conv2d_1a.conv.weight"
#: buffers the graph does not use, tolerated when missing (older torch did not save them)
OPTIONAL_SUFFIX = ".num_batches_tracked"
#: examples shown in an error message, at most
SHOW = 5


class CheckpointError(ValueError):
    """The checkpoint is not (only) a facenet-pytorch InceptionResnetV1: the message says why."""


@dataclass
class Checkpoint:
    """The embedding network's weights and what was removed to get them."""

    state: dict[str, np.ndarray]
    sha256: str
    wrapper: str | None = None  # the dict key the state_dict was found under
    prefix: str = ""  # the prefix stripped from every key (``module.`` and the like)
    head: list[str] = field(default_factory=list)  # classifier keys dropped (original names)


def read_checkpoint(path: Path | str) -> Checkpoint:
    """The validated embedding-network state_dict of the checkpoint file at ``path``."""
    path = Path(path)
    raw = _torch_load(path)
    state, wrapper = unwrap(raw)
    arrays = {key: _to_numpy(key, value) for key, value in state.items()}
    embedding, prefix, head = split_network(arrays)
    check_state(embedding)
    return Checkpoint(embedding, file_sha256(path), wrapper, prefix, head)


def _torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``: a checkpoint is data, never code to run."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the [tools] extra has it
        raise CheckpointError(
            "reading a .pth checkpoint needs PyTorch: pip install torch==2.13.0"
        ) from exc
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise CheckpointError(
            f"{path}: not a loadable state_dict ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "Save the weights with torch.save(model.state_dict(), PATH); a whole pickled "
            "model is refused because loading it would run arbitrary code"
        ) from exc


def unwrap(raw: Any) -> tuple[Mapping[str, Any], str | None]:
    """The state_dict inside ``raw`` and the wrapper key it was under (None: it is ``raw``)."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"the checkpoint holds a {type(raw).__name__}, not a state_dict")
    if _is_state_dict(raw):
        return raw, None
    for key in WRAPPER_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping) and _is_state_dict(inner):
            return inner, key
    keys = ", ".join(sorted(map(str, raw))[:SHOW])
    raise CheckpointError(
        f"no state_dict in the checkpoint: a dict of tensors, or one under "
        f"{'/'.join(WRAPPER_KEYS)}, was expected; its keys are {keys}"
    )


def _is_state_dict(d: Mapping[str, Any]) -> bool:
    """A non-empty mapping of names to tensors (at least one looks like a weight)."""
    return (
        bool(d)
        and all(isinstance(k, str) for k in d)
        and any(hasattr(v, "shape") and hasattr(v, "dtype") for v in d.values())
    )


def _to_numpy(key: str, value: Any) -> np.ndarray:
    if not (hasattr(value, "detach") and hasattr(value, "numpy")):
        raise CheckpointError(f"{key}: a {type(value).__name__}, not a tensor")
    return value.detach().cpu().numpy()


def strip_parallel(key: str) -> str:
    """``module.x`` -> ``x``, as many times as DataParallel wrappers were nested."""
    while key.startswith("module."):
        key = key[len("module.") :]
    return key


def split_network(
    arrays: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], str, list[str]]:
    """(embedding-network state, stripped prefix, dropped head keys) of a flat state_dict.

    Head candidates are the tensors outside the network's prefix and, inside it, those of a
    top-level module the network does not have (``logits``, or a ``fc`` set as an attribute).
    """
    stripped = {strip_parallel(k): (k, v) for k, v in arrays.items()}
    prefix = _network_prefix(list(stripped))
    modules = {k.split(".")[0] for k in expected_shapes()}
    network, head = {}, {}
    for key, (original, value) in stripped.items():
        inner = key[len(prefix) :] if key.startswith(prefix) else None
        if inner is not None and inner.split(".")[0] in modules:
            network[inner] = value
        else:
            head[inner if inner is not None else key] = (original, value)
    check_head({k: v for k, (_, v) in head.items()})
    return network, prefix, sorted(original for original, _ in head.values())


def _network_prefix(keys: list[str]) -> str:
    """The prefix before ``conv2d_1a.conv.weight``; refuses none or several networks."""
    hits = [k[: -len(ANCHOR)] for k in keys if k == ANCHOR or k.endswith("." + ANCHOR)]
    if not hits:
        raise CheckpointError(_not_this_network(keys))
    if len(hits) > 1:
        raise CheckpointError(
            f"the checkpoint holds {len(hits)} InceptionResnetV1 networks ({hits})"
        )
    return hits[0]


def _not_this_network(keys: list[str]) -> str:
    expected = expected_shapes()
    missing = [k for k in expected if k not in keys]
    unknown = [k for k in keys if k not in expected]
    return (
        "not a facenet-pytorch InceptionResnetV1 state_dict: "
        f"{len(missing)} of its {len(expected)} keys are missing (e.g. {', '.join(missing[:SHOW])}) "
        f"and {len(unknown)} keys are not part of it (e.g. {', '.join(unknown[:SHOW])})"
    )


def check_head(head: Mapping[str, np.ndarray]) -> None:
    """Each head must be a chain of ``nn.Linear`` layers on the 512-D embedding, nothing else.

    Heads are grouped by top-level module (``logits``, ``fc``, ``1`` of an ``nn.Sequential``);
    within one, layers are taken in key order (``fc.0``, ``fc.2``): the first must take 512
    inputs and each next one the previous one's outputs. Anything else outside the network
    means the checkpoint holds something this converter does not understand: refused.
    """
    groups: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for key, value in head.items():
        module, _, param = key.rpartition(".")
        if param not in ("weight", "bias") or not module:
            raise CheckpointError(f"{key}: not part of InceptionResnetV1 and not a Linear head")
        groups.setdefault(module.split(".")[0], {}).setdefault(module, {})[param] = value
    for layers in groups.values():
        _check_chain(layers)


def _check_chain(layers: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    width = EMBEDDING_SIZE
    for module in sorted(layers, key=_natural):
        weight, bias = layers[module].get("weight"), layers[module].get("bias")
        if weight is None or weight.ndim != 2 or weight.shape[1] != width:
            shape = None if weight is None else tuple(weight.shape)
            raise CheckpointError(
                f"{module}: not part of InceptionResnetV1 and not a Linear head taking "
                f"{width} inputs (weight shape {shape})"
            )
        if bias is not None and bias.shape != (weight.shape[0],):
            raise CheckpointError(
                f"{module}.bias: shape {tuple(bias.shape)} does not fit its weight"
            )
        width = weight.shape[0]


def _natural(key: str) -> list:
    """Sort ``fc.2`` before ``fc.10``."""
    return [int(p) if p.isdigit() else p for p in key.split(".")]


def check_state(state: Mapping[str, np.ndarray]) -> None:
    """Exactly the embedding network: every key, each with its shape, finite; nothing more."""
    expected = expected_shapes()
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIX)]
    unknown = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys ({', '.join(missing[:SHOW])})")
    if unknown:
        problems.append(f"unexpected {len(unknown)} keys ({', '.join(unknown[:SHOW])})")
    wrong = [
        f"{k} is {tuple(v.shape)}, InceptionResnetV1 has {expected[k]}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if wrong:
        problems.append(f"{len(wrong)} wrong shapes ({'; '.join(wrong[:SHOW])})")
    if problems:
        raise CheckpointError("not facenet-pytorch's InceptionResnetV1: " + "; ".join(problems))
    bad = [k for k, v in state.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"NaN or infinite weights in {', '.join(bad[:SHOW])}")
