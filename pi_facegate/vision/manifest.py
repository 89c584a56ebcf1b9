"""Model manifests: everything the code knows about a bundled model comes from here.

Each model in ``models/`` has a JSON manifest beside it (``<name>.json``) giving its file,
input size and normalisation, output layout, alignment template, embedding size, metric,
default threshold and margin, provenance and sha256. Code reads the manifest; nothing about
a model is hard-coded twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pi_facegate.core.open_set import ImpostorTable
from pi_facegate.exc import ModelError
from pi_facegate.paths import models_dir
from pi_facegate.storage.trust import FileKind, check_private_file


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest; ``data`` keeps the full JSON for backend-specific fields."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def model_path(self) -> Path:
        return self.path.parent / self.data["file"]

    @property
    def sha256(self) -> str:
        """The model file's sha256: the fingerprint a gallery records for its embedder."""
        return str(self.data["sha256"])

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def verify(self) -> None:
        """Raise :class:`ModelError` unless the model file exists and matches its sha256."""
        if not self.model_path.is_file():
            raise ModelError(f"model file {self.model_path} named by {self.path} is missing")
        if file_sha256(self.model_path) != self.sha256:
            raise ModelError(
                f"model file {self.model_path} does not match the sha256 in {self.path}: "
                "it is corrupt or was rebuilt without updating its manifest"
            )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(name_or_path: str | Path, verify: bool = True) -> Manifest:
    """Load a manifest by model name (looked up in ``models/``) or by path to its JSON."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = models_dir() / f"{name_or_path}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelError(f"no model manifest at {path}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc}") from exc
    for key in ("name", "kind", "file", "sha256"):
        if key not in data:
            raise ModelError(f"model manifest {path} lacks the key {key!r}")
    if data["kind"] == "embedder":
        apply_override(path, data)
    manifest = Manifest(path, data)
    if data["kind"] == "embedder":
        impostor_table(manifest)  # a malformed table stops the model loading, not a frame
    if verify:
        manifest.verify()
    return manifest


def impostor_table(manifest: Manifest) -> ImpostorTable | None:
    """The embedder's calibrated impostor table (``embedding.impostor_far``), or None.

    Rows are ``[distance, far]``: the rate at which a stranger's distance to one enrolled
    person (the minimum over that person's embeddings) is at most ``distance``, measured by
    ``tools/calibrate_open_set.py`` on the calibration split. The threshold for a gallery's
    size is read from it (:mod:`pi_facegate.core.open_set`).

    :raises ModelError: the table is present but malformed.
    """
    rows = manifest.get("embedding", {}).get("impostor_far")
    if rows is None:
        return None
    try:
        return ImpostorTable.from_rows(rows)
    except ValueError as exc:
        raise ModelError(f"model manifest {manifest.path}: embedding.impostor_far: {exc}") from exc


#: what ``facegate calibrate --write`` may set beside an embedder manifest (nothing else: the
#: model file, its sha256, its input and its alignment are the manifest's alone)
MODEL_OVERRIDE = FileKind("model calibration override", ModelError)
OVERRIDE_KEYS = frozenset(
    {"threshold", "min_margin", "loosest_threshold", "impostor_far", "calibration", "calibrated"}
)


def override_path(manifest_path: Path) -> Path:
    """Where the local calibration of the manifest at ``manifest_path`` lives."""
    return manifest_path.with_name(manifest_path.stem + ".override.json")


def apply_override(path: Path, data: dict[str, Any]) -> None:
    """Merge ``NAME.override.json`` (written by ``facegate calibrate --write``) into ``data``.

    It decides who gets in, so it is held to the manifest's own standing: not a link, owned
    by root or this user, writable by nobody else, in a folder nobody else may write
    (:func:`pi_facegate.storage.trust.check_private_file`); only :data:`OVERRIDE_KEYS` of
    ``embedding``. Anything else is a :class:`ModelError` naming the file, never ignored.
    """
    extra = override_path(path)
    if not os.path.lexists(extra):
        return
    check_private_file(extra, MODEL_OVERRIDE)  # the state files' rules: nobody else wrote it
    try:
        section = json.loads(extra.read_text())["embedding"]
        unknown = set(section) - OVERRIDE_KEYS
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{extra}: not a calibration override: {exc}") from exc
    if unknown:
        raise ModelError(f"{extra}: refused: it may set only {sorted(OVERRIDE_KEYS)}, not {sorted(unknown)}")
    data["embedding"] = {**data.get("embedding", {}), **section}
    data["override"] = str(extra)
