"""Following faces from frame to frame, so each face gets its own stable track id.

The access policy collects votes *per face*: with two people in view, alice's frames must
not count towards bob's decision. :class:`FaceTracker` gives every detected box a track id
that stays the same while the face stays roughly in place: boxes are matched to the live
tracks greedily by intersection-over-union (IoU), best overlap first, and a track that
finds no box for more than ``max_missing_frames`` frames in a row is dropped (its id is
never reused). Pure numpy, no I/O.

A :class:`Track` can carry ``decided_until``: once the policy has decided about a face
(granted, or denied and logged), the frame loop may skip the expensive embedding of that
face until then. Keep that time short: a tracker cannot tell when one person steps into
the exact place of another, so a long ``decided_until`` would carry one person's decision
over to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: ``(x, y, width, height)`` in pixels, as :class:`pi_facegate.core.faces.Face` has it.
Box = tuple[float, float, float, float]


@dataclass
class Track:
    """One face followed over frames.

    ``box`` is where it was last seen, ``first_seen``/``last_seen`` are the ``now`` values
    of the frames (seconds, the caller's clock), ``hits`` counts the frames it was seen in
    and ``missing`` the frames in a row it has not been. ``decided_until`` is for the frame
    loop (see :meth:`FaceTracker.mark_decided`).
    """

    track_id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1
    missing: int = 0
    decided_until: float = float("-inf")

    def is_decided(self, now: float) -> bool:
        """True while a decision about this face still stands (embedding may be skipped)."""
        return now < self.decided_until


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``boxes_a`` with every box in ``boxes_b``.

    Both are ``(n, 4)`` arrays of ``(x, y, w, h)``; the result is ``(len(a), len(b))`` in
    0..1. A box with no area (w or h <= 0) overlaps nothing (IoU 0), instead of dividing by
    zero.
    """
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0 = a[:, 0:1], a[:, 1:2]
    ax1, ay1 = ax0 + a[:, 2:3], ay0 + a[:, 3:4]
    bx0, by0 = b[:, 0], b[:, 1]
    bx1, by1 = bx0 + b[:, 2], by0 + b[:, 3]
    inter_w = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0.0, None)
    inter_h = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0.0, None)
    inter = inter_w * inter_h
    area_a = np.clip(a[:, 2:3], 0.0, None) * np.clip(a[:, 3:4], 0.0, None)
    area_b = np.clip(b[:, 2], 0.0, None) * np.clip(b[:, 3], 0.0, None)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0.0, inter / union, 0.0)
    return iou


def greedy_assign(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs ``(row, column)`` of ``iou`` chosen best-first, each row and column at most once.

    Only pairs with ``iou >= threshold`` (and above 0) are taken. Greedy is what trackers
    like SORT's simpler cousins use: with a handful of faces at a door it gives the same
    answer as an optimal assignment and needs no solver.
    """
    if iou.size == 0:
        return []
    flat = iou.ravel()
    order = np.argsort(-flat, kind="stable")
    order = order[(flat[order] >= threshold) & (flat[order] > 0.0)]
    rows, cols = np.unravel_index(order, iou.shape)
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        if row in used_rows or col in used_cols:
            continue
        used_rows.add(row)
        used_cols.add(col)
        pairs.append((row, col))
    return pairs


class FaceTracker:
    """Gives each face box a track id that is stable while the face stays in view.

    :param iou_threshold: the least overlap (0..1] of a box with a track's last box for it
        to continue that track; lower follows faster movement, higher keeps two nearby
        faces apart.
    :param max_missing_frames: how many frames in a row a track may go unseen (a missed
        detection, a head turned away) and still continue; on the next miss it is dropped.
        0 drops a track in the first frame without it.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missing_frames: int = 5) -> None:
        if not 0.0 < float(iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        if int(max_missing_frames) != max_missing_frames or max_missing_frames < 0:
            raise ValueError(
                f"max_missing_frames must be a whole number >= 0, got {max_missing_frames!r}"
            )
        self.iou_threshold = float(iou_threshold)
        self.max_missing_frames = int(max_missing_frames)
        self._tracks: dict[int, Track] = {}
        self._next_id = 1
        self._dropped: tuple[int, ...] = ()

    @property
    def tracks(self) -> dict[int, Track]:
        """The live tracks by id (a copy of the mapping; the tracks themselves are live)."""
        return dict(self._tracks)

    @property
    def dropped(self) -> tuple[int, ...]:
        """Ids of the tracks the last :meth:`update` dropped (for ``policy.forget``)."""
        return self._dropped

    def get(self, track_id: int) -> Track | None:
        """The live track with this id, or ``None`` once it has been dropped."""
        return self._tracks.get(track_id)

    def update(self, boxes: Sequence[Box], now: float) -> list[int]:
        """Match this frame's ``boxes`` to the tracks; return one track id per box, in order.

        Call it for every frame, also with an empty list when no face is seen, so that
        tracks age. Boxes that continue no track start new tracks with new ids. Tracks
        that found no box count a miss and are dropped after too many (see
        :attr:`dropped`).
        """
        box_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        live_ids = list(self._tracks)
        previous = np.array([self._tracks[i].box for i in live_ids], dtype=np.float64)
        pairs = greedy_assign(iou_matrix(previous, box_array), self.iou_threshold)
        ids: list[int | None] = [None] * len(box_array)
        for row, col in pairs:
            track = self._tracks[live_ids[row]]
            track.box = _as_box(box_array[col])
            track.last_seen = now
            track.hits += 1
            track.missing = 0
            ids[col] = track.track_id
        seen = {live_ids[row] for row, _ in pairs}
        self._dropped = self._age_unseen(seen)
        for col, track_id in enumerate(ids):
            if track_id is None:
                ids[col] = self._start(_as_box(box_array[col]), now)
        return [int(i) for i in ids if i is not None]

    def mark_decided(self, track_id: int, until: float) -> None:
        """Note that the face of ``track_id`` is decided until ``until`` (caller's clock)."""
        track = self._tracks.get(track_id)
        if track is not None:
            track.decided_until = until

    def reset(self) -> None:
        """Forget every track (ids keep counting up, so an old id is never reused)."""
        self._dropped = tuple(self._tracks)
        self._tracks.clear()

    def _age_unseen(self, seen: set[int]) -> tuple[int, ...]:
        """Count a miss for every track not in ``seen``; drop and return the expired ones."""
        dropped = []
        for track_id, track in list(self._tracks.items()):
            if track_id in seen:
                continue
            track.missing += 1
            if track.missing > self.max_missing_frames:
                del self._tracks[track_id]
                dropped.append(track_id)
        return tuple(dropped)

    def _start(self, box: Box, now: float) -> int:
        track = Track(self._next_id, box, first_seen=now, last_seen=now)
        self._tracks[track.track_id] = track
        self._next_id += 1
        return track.track_id


def _as_box(row: np.ndarray) -> Box:
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
