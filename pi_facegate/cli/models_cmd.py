"""``facegate models list [--json]``: which models are here, which the config uses, and
whether the gallery was made by the configured embedder.

Every manifest in the models folder (``FACEGATE_MODELS``, the checkout's ``models/`` or the
installed copy) is listed with its kind, its file's size and whether the file's sha256 is the
one the manifest promises; a model the config names by path (a converted FaceNet, say) is
listed too. No model is loaded: the check is the digest, so this runs in a second on a Pi.

The gallery keeps embeddings, never photos, and refuses embeddings of another model (its
fingerprint, :func:`~pi_facegate.daemon.wiring.embedder_fingerprint`). So when the
configured embedder is not the gallery's, this says so and how to switch: everyone must be
enrolled again with the new model.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

from pi_facegate.cli import context
from pi_facegate.cli.common import add_gallery_option, add_json_option, print_json
from pi_facegate.cli.table import format_table
from pi_facegate.config.schema import Config
from pi_facegate.daemon.wiring import embedder_fingerprint
from pi_facegate.exc import FacegateError
from pi_facegate.paths import models_dir
from pi_facegate.storage.gallery import Gallery
from pi_facegate.vision.antispoof import DEFAULT_ANTISPOOF
from pi_facegate.vision.landmarks import DEFAULT_LANDMARKS
from pi_facegate.vision.manifest import Manifest, file_sha256, load_manifest

SWITCH_HINT = (
    "the gallery holds no photos, so everyone must be enrolled again with the new model: "
    "stop the service, move the gallery aside (keep it to go back), `facegate gallery init "
    "--force`, then `facegate enroll NAME PHOTO...` or enrolment at the door for each person"
)


@dataclass(frozen=True)
class ModelRow:
    """One manifest as listed."""

    name: str
    kind: str
    file: str
    megabytes: float | None
    sha256: str
    check: str  #: "ok", "MISMATCH" or "file missing"
    used_as: str  #: what the config uses it for ("" when unused)
    manifest: str


def register(subparsers, parents) -> None:
    """Add ``models list [--json] [--gallery PATH]``."""
    p = subparsers.add_parser("models", help="the models here and the one the config uses")
    actions = p.add_subparsers(dest="models_action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        parents=parents,
        help="bundled and local models, sha256, which one the config and the gallery use",
        description="List every model manifest (bundled and local), its file's sha256 check "
        "and what the config uses it for, and say whether the gallery was made by the "
        "configured embedder. Loads no model.",
    )
    add_json_option(listing)
    add_gallery_option(listing)
    listing.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    """Print the models table and the gallery's model."""
    _, config = context.resolve_config(args)
    uses = config_uses(config)
    rows = [model_row(m, uses) for m in manifests(models_dir(), uses)]
    gallery = gallery_line(args, config)
    if args.json:
        print_json({"models": [asdict(r) for r in rows], "uses": uses, "gallery": gallery})
        return 0
    print(
        format_table(
            ["NAME", "KIND", "MB", "SHA256", "CHECK", "USED AS"],
            [
                [
                    r.name,
                    r.kind,
                    "-" if r.megabytes is None else f"{r.megabytes:.1f}",
                    r.sha256[:12],
                    r.check,
                    r.used_as or "-",
                ]
                for r in rows
            ],  # fmt: skip
        )
    )
    print(f"models folder: {models_dir()}")
    print(gallery["text"])
    return 0


def config_uses(config: Config) -> dict[str, str]:
    """What the config names for each role: ``{role: manifest name or path}``."""
    uses = {"detector": config.detector.model, "embedder": config.embedder.model}
    try:  # the face mesh the embedder's alignment reads, if its manifest names one
        alignment = load_manifest(config.embedder.model, verify=False).get("alignment", {})
    except FacegateError:
        alignment = {}
    if alignment.get("mesh_template"):
        uses["alignment landmarks"] = alignment["mesh_template"].get("landmarks", DEFAULT_LANDMARKS)
    if config.liveness.enabled:
        for i, name in enumerate(DEFAULT_ANTISPOOF, 1):
            uses[f"liveness texture {i}"] = name
    return uses


def manifests(folder: Path, uses: dict[str, str]) -> list[Manifest]:
    """Every manifest in ``folder``, plus those the config names by path, by name."""
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    paths += [Path(v) for v in uses.values() if v.endswith(".json") and Path(v).is_file()]
    found: dict[Path, Manifest] = {}
    for path in paths:
        try:
            manifest = load_manifest(path, verify=False)
        except FacegateError:
            continue  # not a model manifest (models/README's neighbours): not listed
        found.setdefault(path.resolve(), manifest)
    return sorted(found.values(), key=lambda m: (m.kind, m.name))


def model_row(manifest: Manifest, uses: dict[str, str]) -> ModelRow:
    """The manifest's row: its file checked against the sha256 it promises."""
    path = manifest.model_path
    if path.is_file():
        check = "ok" if file_sha256(path) == manifest.sha256 else "MISMATCH"
        size = round(path.stat().st_size / 1e6, 1)
    else:
        check, size = "file missing", None
    roles = [role for role, name in uses.items() if _names(name, manifest)]
    return ModelRow(
        manifest.name, manifest.kind, path.name, size, manifest.sha256, check,
        ", ".join(roles), str(manifest.path),
    )  # fmt: skip


def gallery_line(args: argparse.Namespace, config: Config) -> dict[str, object]:
    """Which embedder made the gallery, and whether it is the configured one."""
    path = context.gallery_path(args, config, create=False)
    if not path.exists():
        return {"path": str(path), "fingerprint": None, "matches": None,
                "text": f"gallery {path}: none yet"}  # fmt: skip
    try:
        wanted = embedder_fingerprint(load_manifest(config.embedder.model, verify=False))
    except FacegateError as exc:
        wanted, problem = None, str(exc)
    else:
        problem = None
    with Gallery.open(path, fingerprint=None, create=False) as gallery:
        have, people = gallery.fingerprint, len(gallery.people())
    matches = wanted is not None and have == wanted
    if matches:
        text = f"gallery {path}: {people} people, made by the configured embedder ({have})"
    elif problem:
        text = f"gallery {path}: made by {have}; the configured embedder is unusable: {problem}"
    else:
        text = (
            f"gallery {path}: {people} people made by {have}, but the config's embedder is "
            f"{wanted}: the door refuses this gallery. To switch, {SWITCH_HINT}"
        )
    return {"path": str(path), "fingerprint": have, "configured": wanted,
            "matches": matches, "people": people, "text": text}  # fmt: skip


def _names(name: str, manifest: Manifest) -> bool:
    """Whether a config value (a name or a path to a .json) names this manifest."""
    if name.endswith(".json"):
        return Path(name).resolve() == Path(manifest.path).resolve()
    return name == manifest.name
