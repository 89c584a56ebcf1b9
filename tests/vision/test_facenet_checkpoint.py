"""What ``tools/convert_facenet.py`` accepts as a FaceNet checkpoint, and what it refuses.

Every checkpoint here is made by facenet-pytorch's own class (or a transfer-learning module
around it) and saved with ``torch.save``, the way people have them: bare, wrapped in a
training script's dict, with DataParallel's ``module.`` prefixes, with a classifier head. The
embedding network must come out identical each time; another architecture, a missing layer,
a wrong shape or a stray tensor must be refused with a message that names the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.tools, pytest.mark.slow]

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from tools.facenet_checkpoint import CheckpointError, read_checkpoint  # noqa: E402
from tools.facenet_graph import expected_shapes, make_module  # noqa: E402


@pytest.fixture(scope="module")
def net(random_facenet):
    return random_facenet(seed=1)


@pytest.fixture(scope="module")
def plain(net, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "plain.pth"
    torch.save(net.state_dict(), path)
    return path


def _same_state(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_the_spec_is_facenet_pytorchs_own_network(facenet_class):
    state = facenet_class().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_shapes()
    with_logits = facenet_class(classify=True, num_classes=7).state_dict()
    assert set(with_logits) - set(state) == {"logits.weight", "logits.bias"}


def test_a_bare_state_dict_is_taken_as_it_is(plain, net):
    ckpt = read_checkpoint(plain)
    assert ckpt.head == [] and ckpt.prefix == "" and ckpt.wrapper is None
    _same_state(ckpt.state, {k: v.numpy() for k, v in net.state_dict().items()})
    assert len(ckpt.sha256) == 64


def test_a_transfer_learning_head_under_dataparallel_converts_to_the_same_network(
    net, plain, photo_chips, tmp_path
):
    # the tutorial recipe: the embedding network, a Linear(512, 7) on top, DataParallel,
    # and the training script's dict around the state_dict
    tuned = torch.nn.DataParallel(torch.nn.Sequential(net, torch.nn.Linear(512, 7)))
    path = tmp_path / "tuned.pth"
    torch.save({"epoch": 12, "state_dict": tuned.state_dict(), "best_acc": 0.93}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.wrapper == "state_dict" and ckpt.prefix == "0."
    assert ckpt.head == ["module.1.bias", "module.1.weight"]
    reference = read_checkpoint(plain)
    _same_state(ckpt.state, reference.state)
    chips = photo_chips[:2].astype(np.float32)  # the rebuilt graphs give the same embeddings
    np.testing.assert_array_equal(
        make_module(ckpt.state)(chips).numpy(), make_module(reference.state)(chips).numpy()
    )


def test_facenet_pytorchs_own_logits_head_is_dropped(random_facenet, tmp_path):
    classifier = random_facenet(seed=2, classify=True, num_classes=7)
    path = tmp_path / "classifier.pth"
    torch.save({"model": {f"module.{k}": v for k, v in classifier.state_dict().items()}}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.head == ["module.logits.bias", "module.logits.weight"] and ckpt.wrapper == "model"
    assert set(ckpt.state) == set(expected_shapes())


def test_an_mlp_head_on_the_embedding_is_dropped(net, tmp_path):
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()}
    state |= {"head.0.weight": torch.zeros(256, 512), "head.0.bias": torch.zeros(256)}
    state |= {"head.2.weight": torch.zeros(7, 256), "head.2.bias": torch.zeros(7)}
    torch.save(state, tmp_path / "mlp.pth")
    ckpt = read_checkpoint(tmp_path / "mlp.pth")
    assert ckpt.prefix == "backbone." and len(ckpt.head) == 4


class TinyResNet(torch.nn.Module):
    """Another architecture: a torchvision-style residual net with its own key names."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.layer1 = torch.nn.Sequential(
            torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.BatchNorm2d(16)
        )
        self.fc = torch.nn.Linear(16, 512)


def test_another_architecture_is_refused_with_what_is_missing(tmp_path):
    torch.save(TinyResNet().state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(tmp_path / "resnet.pth")
    message = str(err.value)
    assert "not a facenet-pytorch InceptionResnetV1" in message
    assert "conv2d_1a.conv.weight" in message and "conv1.weight" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.pop("repeat_2.3.conv2d.weight"), "missing 1 keys (repeat_2.3.conv2d.weight)"),
        (
            lambda s: s.__setitem__("last_linear.weight", torch.zeros(128, 1792)),
            "last_linear.weight is (128, 1792), InceptionResnetV1 has (512, 1792)",
        ),
        (
            lambda s: s.__setitem__("repeat_1.0.branch3.conv.weight", torch.zeros(1)),
            "unexpected 1 keys (repeat_1.0.branch3.conv.weight)",
        ),
        (
            lambda s: s.__setitem__("fc.weight", torch.zeros(7, 256)),
            "fc: not part of InceptionResnetV1 and not a Linear head taking 512 inputs",
        ),
        (
            lambda s: s["conv2d_1a.bn.running_var"].__setitem__(0, float("nan")),
            "NaN or infinite weights in conv2d_1a.bn.running_var",
        ),
    ],
    ids=["missing-layer", "wrong-shape", "extra-tensor", "bad-head", "nan"],
)
def test_a_damaged_network_is_refused_naming_the_key(net, tmp_path, change, expected):
    state = {k: v.clone() for k, v in net.state_dict().items()}
    change(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_checkpoint(tmp_path / "bad.pth")


def test_a_pickled_module_and_non_checkpoints_are_refused(net, tmp_path):
    torch.save(net, tmp_path / "whole.pth")  # a whole module: loading it would run code
    with pytest.raises(CheckpointError, match="whole pickled model is refused"):
        read_checkpoint(tmp_path / "whole.pth")
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "nothing.pth")
    with pytest.raises(CheckpointError, match="no state_dict in the checkpoint"):
        read_checkpoint(tmp_path / "nothing.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable state_dict"):
        read_checkpoint(tmp_path / "text.pth")
