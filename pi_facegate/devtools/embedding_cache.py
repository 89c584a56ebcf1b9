"""A file cache of photo embeddings for the evaluations: each photo is embedded once.

An evaluation over hundreds of photos and many random splits spends nearly all its time in
the detector and the embedder, and re-running it (another seed, another target) would embed
the same photos again. The cache keeps one vector per (photo, size, mtime, face choice) for
one embedder fingerprint -- the model file and its alignment, the same fingerprint a gallery
records -- so a changed photo, model or alignment is embedded afresh, never mixed up.

It lives outside the repository (``$XDG_CACHE_HOME/pi-facegate/``, else ``~/.cache``) and is
written readable by its owner only: embeddings are biometric data, even of test photos.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def default_cache_path(fingerprint: str) -> Path:
    """``<cache dir>/pi-facegate/eval-embeddings-<fingerprint>.npz``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in fingerprint)
    return Path(base) / "pi-facegate" / f"eval-embeddings-{safe}.npz"


class EmbeddingCache:
    """Vectors (and whether a face was found) by photo, for one embedder fingerprint.

    ``path`` None keeps everything in memory (``--no-cache``): each photo is still embedded
    only once per run. A cache file of another fingerprint, or one that cannot be read, is
    ignored and rewritten.
    """

    def __init__(self, path: Path | None, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self._vectors: dict[str, np.ndarray] = {}
        self._found: dict[str, bool] = {}
        self._dirty = False
        if path is not None and path.is_file():
            self._load(path)

    def __len__(self) -> int:
        return len(self._vectors)

    @staticmethod
    def key(photo: Path, choice: str) -> str:
        """What identifies one embedding: the file (path, size, mtime) and the face choice."""
        stat = photo.stat()
        return f"{choice}\t{photo.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}"

    def get(self, photo: Path, choice: str) -> tuple[np.ndarray, bool] | None:
        """``(vector, face found)`` of a photo embedded before, else None."""
        key = self.key(photo, choice)
        if key not in self._vectors:
            return None
        return self._vectors[key], self._found[key]

    def put(self, photo: Path, choice: str, vector: np.ndarray, found: bool) -> None:
        key = self.key(photo, choice)
        self._vectors[key] = np.asarray(vector, dtype=np.float32)
        self._found[key] = bool(found)
        self._dirty = True

    def save(self) -> None:
        """Write the cache (0600) if anything was added; a no-op in memory."""
        if self.path is None or not self._dirty or not self._vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys = sorted(self._vectors)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                fingerprint=np.array(self.fingerprint),
                keys=np.array(keys),
                vectors=np.stack([self._vectors[k] for k in keys]),
                found=np.array([self._found[k] for k in keys]),
            )
        os.replace(tmp, self.path)
        self._dirty = False

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["fingerprint"]) != self.fingerprint:
                    return
                keys, vectors, found = data["keys"], data["vectors"], data["found"]
        except (OSError, ValueError, KeyError):
            return  # unreadable: rebuilt from the photos
        for key, vector, flag in zip(keys.tolist(), vectors, found.tolist(), strict=True):
            self._vectors[str(key)] = vector
            self._found[str(key)] = bool(flag)
