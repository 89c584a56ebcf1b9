"""Fixtures of the FaceNet conversion tests: facenet-pytorch's own class and seeded random nets.

The class comes from facenet-pytorch itself (imported without its package ``__init__``, see
``tools/facenet_reference.py``), so a test network has exactly upstream's layers and key
names. Its weights are random but seeded, and its batch norms are given random affine
parameters and running statistics measured on real face photos: a conversion that mishandled
a batch norm (the default mean 0 / variance 1 / gamma 1 / beta 0 would hide that) or the
input normalisation shows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: photos whose statistics the random nets' batch norms take (calibration split people)
BN_PHOTOS = "five_celebrity_faces/train/*/*.jpg"


@pytest.fixture(scope="session")
def facenet_class() -> type:
    """facenet-pytorch's ``InceptionResnetV1`` (skips without torch or facenet-pytorch)."""
    pytest.importorskip("torch")
    from tools.facenet_reference import inception_resnet_v1

    try:
        return inception_resnet_v1()
    except ImportError as exc:
        pytest.skip(f"{exc} (tools/bootstrap.sh installs it)")


@pytest.fixture(scope="session")
def photo_chips(facedata: Path) -> np.ndarray:
    """Real face photos as 160x160 RGB uint8 (tight 150x150 crops, resized)."""
    import cv2

    from pi_facegate.vision.images import load_image

    paths = sorted(facedata.glob(BN_PHOTOS))[::3]
    return np.stack([cv2.resize(load_image(p), (160, 160)) for p in paths])


@pytest.fixture(scope="session")
def random_facenet(facenet_class: type, photo_chips: np.ndarray) -> Callable[..., object]:
    """``make(seed=0, **kwargs)``: a seeded random ``InceptionResnetV1(**kwargs)`` in eval mode."""
    import torch

    def make(seed: int = 0, **kwargs):
        torch.manual_seed(seed)
        net = facenet_class(**kwargs).eval()
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.momentum = None  # running stats = the plain mean over the photos
                    module.reset_running_stats()
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.uniform_(-0.2, 0.2)
            x = torch.from_numpy(photo_chips).permute(0, 3, 1, 2).float()
            net.train()
            net((x - 127.5) / 128.0)
            net.eval()
        return net

    return make
