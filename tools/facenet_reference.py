"""facenet-pytorch's own ``InceptionResnetV1``, the reference a conversion is checked against.

Only the tools and tests use it. facenet-pytorch is installed with ``pip install --no-deps``
(``tools/bootstrap.sh``): its metadata pins torch<=2.3 and torchvision, which this
environment cannot have (torch is pinned to 2.13.0, and PyPI's torchvision does not load
beside that CPU build). Its package ``__init__`` imports MTCNN, which imports torchvision, so
``import facenet_pytorch`` fails here; :func:`inception_resnet_v1` therefore registers a stub
parent package (just a ``__path__``) and imports ``facenet_pytorch/models/inception_resnet_v1.py``
alone, which needs only torch and requests. The class is upstream's, unmodified.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Mapping
from typing import Any

import numpy as np

from tools.facenet_graph import INPUT_MEAN, INPUT_SCALE

PACKAGE = "facenet_pytorch"
MODULE = f"{PACKAGE}.models.inception_resnet_v1"
INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"


def inception_resnet_v1() -> type:
    """The ``InceptionResnetV1`` class, imported without running ``facenet_pytorch/__init__``."""
    if MODULE in sys.modules:
        return sys.modules[MODULE].InceptionResnetV1
    spec = importlib.util.find_spec(PACKAGE) if PACKAGE not in sys.modules else None
    if PACKAGE not in sys.modules:
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"facenet-pytorch is not installed: {INSTALL_HINT}")
        stub = types.ModuleType(PACKAGE)
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__file__ = None
        sys.modules[PACKAGE] = stub
    return importlib.import_module(MODULE).InceptionResnetV1


def version() -> str | None:
    """The installed facenet-pytorch version (for the manifest's provenance)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("facenet-pytorch")
    except PackageNotFoundError:
        return None


def reference_model(state: Mapping[str, np.ndarray]) -> Any:
    """An ``InceptionResnetV1`` in eval mode with exactly ``state`` loaded (strict)."""
    import torch

    model = inception_resnet_v1()().eval()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"state does not fit InceptionResnetV1: {missing[:5]} {unexpected[:5]}")
    return model


def torch_embeddings(model: Any, chips: np.ndarray, batch: int = 16) -> np.ndarray:
    """PyTorch embeddings of uint8 RGB chips ``(N, 160, 160, 3)``, normalised as upstream does."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(chips), batch):
            x = torch.from_numpy(np.ascontiguousarray(chips[start : start + batch]))
            x = (x.permute(0, 3, 1, 2).float() - INPUT_MEAN) / INPUT_SCALE
            out.append(model(x).numpy())
    return np.concatenate(out).astype(np.float32)
