#!/usr/bin/env python3
"""Generate SIMULATED presentation attacks: a labelled evaluation set for the liveness stage.

    .venv/bin/python tools/make_attacks.py --out /tmp/attacks [--seed 0] [--frames 50] [--fps 10]
        [--people N] [--photos-per-person K] [--kinds k1 k2 ...] [--workers N]

Everything this tool writes is SIMULATED: no printer, phone or camera was involved. Each
video shows a real photograph (or a real clip) of a real person as a camera would see it
when somebody holds it up to the door: printed on a sheet of paper, or shown on a phone,
tablet or monitor, moving in 3-D in front of a room. Figures measured on it are figures on
simulated attacks and must be labelled so; the manifest has a ``simulated`` column and the
output folder gets a README.txt that says so.

How one presentation is made (:func:`render_presentation`, numpy and OpenCV only):

1. *Medium.* The source photo is cropped around its face (box x2.2, clipped), so the face
   fills the medium as in a real attack. A print gets a white paper margin, a print tone
   curve (compressed contrast, lower saturation, warm paper), paper grain, optionally a
   halftone dot screen and ink spread. A screen gets a black bezel with rounded corners,
   the photo letterboxed in black, a display tone (gamma, brightness boost, cool white
   point, raised black level) and an RGB-stripe pixel grid; after the perspective warp the
   grid aliases into moire, and a soft specular glare that moves with the plane is added.
   A clip plays frame by frame (resampled to ``--fps``), cropped to where its face moves.
2. *Geometry.* The medium is a physical rectangle (print 15x20 cm, phone 7x14 cm, tablet
   16x22 cm, monitor 35x25 cm) in camera coordinates, rotated (yaw, pitch, roll) about its
   centre and translated to the distance at which the face comes out 135-195 px wide (of
   the 100-220 px a door camera sees at arm's length: the middle, where the detector is
   reliable on a degraded face); a pinhole camera (f = 560 px for 640x480, principal
   point in the centre) projects its corners, and ``cv2.getPerspectiveTransform`` +
   ``cv2.warpPerspective`` map it onto the background with an anti-aliased alpha edge.
   Hand motion is a sum of a few low-frequency sinusoids per axis plus tremor per frame;
   each attack kind has its own amplitudes (:data:`MOTIONS`). A bent print is remapped
   (``cv2.remap``) onto a cylinder about its vertical axis before the warp.
3. *Background.* A photo without faces (``no_face_and_multi_face_misc``, chosen from its
   ``face_content_labels.csv`` and checked with the detector), cropped to 4:3, slightly
   defocused and dimmed to the room light that also lights a print.
4. *Camera.* The lens's low-pass before sampling (without it every fine pattern aliases at
   full contrast, far beyond real captures), defocus blur, a centre-weighted auto exposure
   with a lag and jitter, Gaussian sensor noise (sigma 2-4), then the mp4 encode.

Randomness comes from ``numpy.random.default_rng([seed, crc32(key)])`` per presentation, the
key naming kind, subject and source, so a presentation is the same whatever else is
generated alongside it, and with any number of workers. What it does not model: real ink
and display spectra, the sensor's colour filter array (the simulated pixel grid is coarser
than a real screen's, about one camera pixel, to stand in for the aliasing a real sensor
leaves), rolling-shutter flicker and screen refresh, the hand holding the medium, focus
distance (a phone held at 13 cm is as sharp as a print at 50 cm), and the perspective of a
bent sheet beyond a per-column depth scale.

Enrolment: per person of ``five_celebrity_faces`` the first 3 usable photos (the project's
detector finds exactly one face at least 80 px wide) are ``enrol`` rows and the next
``--photos-per-person`` usable ones are attack sources, so no enrolment photo is ever an
attack source for the same person. For the talking-head clips the enrolment image is the
clip's frame 0 (written to ``DIR/enrol/``) and the attack is the clip itself on a screen,
from frame 0; Lin-Manuel Miranda is enrolled from ``lin-manuel-miranda.png`` and his clip
plays from the start whose frames most often show exactly one face (it opens on shots
without him).

The output holds third-party photographs of real people: keep it outside the repository
(the tool refuses an ``--out`` inside it) and do not redistribute it.
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import multiprocessing
import os
import shlex
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FRAME_W, FRAME_H = 640, 480
FOCAL_PX = 560.0  # a ~60 degree horizontal field of view, typical of a Pi camera / webcam
CX, CY = (FRAME_W - 1) / 2, (FRAME_H - 1) / 2

PHOTO_KINDS = (
    "print_still",
    "print_tilt",
    "print_swing",
    "print_bent",
    "print_approach",
    "phone_still",
    "phone_moving",
    "tablet_still",
    "tablet_moving",
    "monitor_still",
)
CLIP_KIND = "screen_video"
ALL_KINDS = (*PHOTO_KINDS, CLIP_KIND)
CLIP_DEVICES = ("phone", "tablet", "monitor")

ENROL_PHOTOS = 3
MIN_SOURCE_FACE_PX = 80
CROP_EXPAND = 2.2  # face box x2.2: the face fills most of the medium, as an attacker prints it

PRINT_SIZE_M = (0.15, 0.20)  # portrait sheet; turned landscape for landscape pictures
PRINT_MARGIN_M = 0.007
PRINT_TEXELS_PER_M = 6000.0  # 6 texels per mm: fine enough for a ~0.5 mm halftone screen

#: subjects the liveness thresholds were tuned on (``tools/measure_planarity.py``): their
#: rows get ``split`` "tune", so ``facegate eval liveness`` reports on the others only
TUNED_SUBJECTS = frozenset({"katie_hill"})

#: (source path relative to facedata or a file name to find, subject, enrol photo or None);
#: each clip is also written as a live (bona fide) presentation of its subject
CLIPS = (
    ("live_clips/WDA_AlexandriaOcasioCortez_000.mp4", "aoc", None),
    ("live_clips/WDA_KatieHill_000.mp4", "katie_hill", None),
    ("short_hamilton_clip.mp4", "lin_manuel_miranda", "lin-manuel-miranda.png"),
)


@dataclass(frozen=True)
class Screen:
    """A display device: body size (portrait for hand-held ones), bezel, simulated pixels.

    ``pixels_across`` is the simulated pixel count across the screen's width, chosen so one
    screen pixel projects to roughly 0.7 camera pixels at the distance the device is held:
    a grid near the camera's sampling pitch is what aliases into visible moire.
    """

    name: str
    size_m: tuple[float, float]
    bezel_m: float
    chin_m: float  # extra bezel below the screen (a monitor's lower frame)
    corner_m: float
    pixels_across: int


SCREENS = {
    "phone": Screen("phone", (0.07, 0.14), 0.0035, 0.0, 0.009, 200),
    "tablet": Screen("tablet", (0.16, 0.22), 0.009, 0.0, 0.012, 270),
    "monitor": Screen("monitor", (0.35, 0.25), 0.008, 0.012, 0.004, 380),
}


@dataclass(frozen=True)
class Motion:
    """How a kind moves: static tilt range, slow sway per axis, tremor per frame.

    ``sway`` is the peak of (yaw, pitch, roll) in degrees and (x, y, z) in metres of a sum of
    low-frequency sinusoids (``freq_hz``); ``tremor`` is the per-frame jitter of the hand.
    ``tilt`` is the range (+-) of the static pose nobody holds perfectly frontal.
    """

    tilt_deg: tuple[float, float, float]
    sway_deg: tuple[float, float, float]
    sway_m: tuple[float, float, float]
    freq_hz: tuple[float, float]
    tremor_deg: float
    tremor_m: float
    components: int = 3


HAND_STILL = Motion((6, 6, 4), (0.7, 0.7, 0.5), (0.0015, 0.0015, 0.0015), (0.1, 0.6), 0.3, 0.0005)
DESK = Motion((12, 10, 1.5), (0.05, 0.05, 0.02), (0.0002, 0.0002, 0.0002), (0.1, 0.5), 0.02, 0.0001)
MOTIONS = {
    "print_still": HAND_STILL,
    "print_tilt": Motion((3, 3, 3), (15, 15, 3), (0.01, 0.01, 0.01), (0.08, 0.25), 0.3, 0.0007),
    # one sinusoid: a deliberate swing from side to side, 1-2 cycles in 5 s
    "print_swing": Motion(
        (2, 4, 3), (30, 4, 3), (0.015, 0.005, 0.01), (0.25, 0.45), 0.3, 0.0007, 1
    ),
    "print_bent": Motion((4, 4, 3), (8, 8, 3), (0.008, 0.008, 0.01), (0.08, 0.3), 0.3, 0.0007),
    "print_approach": Motion((4, 4, 3), (4, 4, 2), (0.01, 0.01, 0.0), (0.1, 0.4), 0.3, 0.0007),
    "phone_still": HAND_STILL,
    "phone_moving": Motion((4, 4, 3), (20, 15, 10), (0.02, 0.02, 0.02), (0.15, 0.6), 0.4, 0.001),
    "tablet_still": HAND_STILL,
    "tablet_moving": Motion((4, 4, 3), (15, 12, 8), (0.025, 0.025, 0.03), (0.1, 0.5), 0.3, 0.001),
    "monitor_still": DESK,
    "screen_video:phone": Motion(
        (6, 6, 4), (3, 3, 2), (0.004, 0.004, 0.004), (0.1, 0.5), 0.3, 0.0006
    ),
    "screen_video:tablet": Motion(
        (6, 6, 4), (3, 3, 2), (0.004, 0.004, 0.004), (0.1, 0.5), 0.3, 0.0006
    ),
    "screen_video:monitor": DESK,
}

#: face width in the frame (px) a medium is held for: mid-range of the 100-220 px the
#: door sees at arm's length, where the detector is reliable on a degraded (printed,
#: displayed) face; a phone playing a wide clip cannot come near enough for more
FACE_PX = (135.0, 195.0)
CLIP_PHONE_FACE_PX = (105.0, 140.0)
#: nearest a medium is held: a phone playing a wide clip (a small face on a 7 cm screen)
#: must come this close, filling most of the frame, for its face to be ~100 px wide
MIN_DEPTH_M = 0.13
APPROACH_FROM_M, APPROACH_TO_M = 0.8, 0.35
#: face sizes the approach starts and ends at, at most: BlazeFace (short range) sees a
#: 640x480 frame at 128x128, so a face of 100 px is 20 model pixels, where detection of a
#: degraded face starts to fail; a 15 cm print of a tight 150 px crop has an 11-12 cm
#: face, which is 80 px at 0.8 m, so such an approach starts nearer (~0.55 m)
APPROACH_FACE_PX = (120.0, 220.0)


@dataclass
class Medium:
    """A medium to warp: float32 texture of RGB (0..255), later premultiplied RGB + alpha.

    ``PAD`` texels of zero alpha surround the physical rectangle, so bilinear sampling gives
    the edge a soft ramp instead of a hard cut; ``outline`` is the rounded rectangle
    ``((x0, y0, x1, y1), radius)`` in texels that :func:`with_edge` turns into alpha once the
    distance (so the ramp) is known. ``face_m`` is the face's centre (u, v) from the medium's
    centre and its width, in metres, which decide the distance the medium is held at.
    """

    texture: np.ndarray
    size_m: tuple[float, float]
    face_m: tuple[float, float, float]
    outline: tuple[tuple[float, float, float, float], float]
    pad: int = 0


#: the lens and pixel aperture low-pass the medium before the sensor samples it: a Gaussian
#: of this many camera pixels (in texels: times texels per pixel) applied to the texture.
#: Without it every fine pattern (pixel grid, halftone) aliases at full contrast, far
#: stronger than real captures; with it the moire keeps a realistic, distance-dependent part.
OPTICS_SIGMA_PX = 0.3

PAD = 12  # texels of empty border: room for an edge ramp up to ~10 texels (a print at 0.8 m)
MAX_RAMP = 10.0


# --------------------------------------------------------------------------- small helpers


def smoothstep(x: np.ndarray) -> np.ndarray:
    """Ease-in-out 0..1: a hand accelerates and brakes, it does not move at constant speed."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def sway(
    rng: np.random.Generator, t: np.ndarray, peak: float, freq: tuple[float, float], k: int
) -> np.ndarray:
    """A smooth random path: ``k`` sinusoids of random frequency and phase, scaled to ``peak``.

    Sums of a few low-frequency sinusoids look like a hand's slow drift; normalising the
    maximum keeps the amplitude the kind promises (e.g. a +-30 degree swing).
    """
    if peak == 0 or len(t) == 0:
        return np.zeros_like(t)
    path = np.zeros_like(t)
    for _ in range(k):
        f = rng.uniform(*freq)
        path += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return path * (peak * rng.uniform(0.85, 1.0) / max(np.abs(path).max(), 1e-9))


def tremor(rng: np.random.Generator, n: int, peak: float) -> np.ndarray:
    """Per-frame hand tremor: lightly correlated noise (AR(1)), about +-``peak``."""
    out = np.zeros(n)
    x = 0.0
    for i in range(n):
        x = 0.5 * x + rng.normal(0.0, 0.4 * peak)
        out[i] = x
    return np.clip(out, -peak, peak)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation matrix (degrees) ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``: pitch about the
    horizontal axis first, then yaw about the vertical axis, then roll about the optical
    axis, so a yaw swing stays a swing about the vertical however the sheet is tipped."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


def project_corners(size_m: tuple[float, float], pose: np.ndarray) -> np.ndarray:
    """Image positions (4, 2) of the medium's corners (TL, TR, BR, BL) under ``pose``
    (yaw, pitch, roll in degrees; x, y, z of the centre in metres, camera coordinates)."""
    w, h = size_m
    local = np.array(
        [[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]]
    )
    pts = local @ rotation(*pose[:3]).T + pose[3:6]
    return np.stack(
        [FOCAL_PX * pts[:, 0] / pts[:, 2] + CX, FOCAL_PX * pts[:, 1] / pts[:, 2] + CY], 1
    )


def rounded_rect_alpha(
    shape: tuple[int, int], rect: tuple[float, float, float, float], radius: float, ramp: float
) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a rounded rectangle ``(x0, y0, x1, y1)`` in texels.

    A signed distance with a ramp ``ramp`` texels wide: when the texture is later shrunk
    ``ramp`` times by the warp, the edge still spans about one camera pixel (no jaggies).
    """
    h, w = shape
    x0, y0, x1, y1 = rect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bx, by = (x1 - x0) / 2, (y1 - y0) / 2
    radius = min(radius, bx, by)
    qx = np.abs(np.arange(w, dtype=np.float32) - cx)[None, :] - (bx - radius)
    qy = np.abs(np.arange(h, dtype=np.float32) - cy)[:, None] - (by - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    dist = outside + inside - radius
    return np.clip(0.5 - dist / max(ramp, 1.0), 0.0, 1.0).astype(np.float32)


def fit_inside(aspect: float, box_w: float, box_h: float) -> tuple[float, float]:
    """Largest (w, h) of the given aspect (w/h) inside a box: the picture is letterboxed."""
    w = min(box_w, box_h * aspect)
    return w, w / aspect


def default_face_box(image: np.ndarray) -> tuple[float, float, float, float]:
    """The face a :func:`crop_around_face` crop has when nobody measured it: centred, with
    the crop's expansion (the face is 1/2.2 of the crop)."""
    h, w = image.shape[:2]
    fw, fh = w / CROP_EXPAND, h / CROP_EXPAND
    return ((w - fw) / 2, (h - fh) / 2, fw, fh)


def crop_around_face(
    image: np.ndarray, box: Sequence[float], expand: float = CROP_EXPAND
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The picture an attacker would print: the face box grown ``expand`` times, clipped.

    Returns the crop and the face box in the crop's coordinates.
    """
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    x0 = int(max(0, round(cx - expand * w / 2)))
    y0 = int(max(0, round(cy - expand * h / 2)))
    x1 = int(min(image.shape[1], round(cx + expand * w / 2)))
    y1 = int(min(image.shape[0], round(cy + expand * h / 2)))
    return image[y0:y1, x0:x1].copy(), (x - x0, y - y0, w, h)


# --------------------------------------------------------------------------- print medium


def print_tone(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink on paper: a print cannot be darker than ink nor brighter than paper, so contrast
    is compressed (about 25..235), a mild gamma darkens mid-tones, inks desaturate (x0.8) and
    the paper is slightly warm."""
    lo, hi = rng.uniform(20, 30), rng.uniform(228, 240)
    gamma = rng.uniform(1.0, 1.2)
    out = lo + (hi - lo) * (rgb / 255.0) ** gamma
    grey = out.mean(axis=2, keepdims=True)
    out = grey + rng.uniform(0.75, 0.85) * (out - grey)
    warm = np.array([1.0 + rng.uniform(0.0, 0.03), 1.0, 1.0 - rng.uniform(0.03, 0.07)])
    return (out * warm).astype(np.float32)


def halftone(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An amplitude-modulated dot screen per ink (CMY at different angles), mixed with the
    continuous tone: the dot pattern of a laser or inkjet print at ~0.5 mm period."""
    h, w = rgb.shape[:2]
    period = rng.uniform(2.6, 3.6)  # texels: 0.43-0.6 mm at 6 texels/mm
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(rgb)
    for c, angle in enumerate(np.radians([15.0, 75.0, 0.0]) + rng.uniform(0, np.pi / 2)):
        u = xx * math.cos(angle) + yy * math.sin(angle)
        v = -xx * math.sin(angle) + yy * math.cos(angle)
        screen = 0.5 + 0.5 * np.cos(2 * np.pi * u / period) * np.cos(2 * np.pi * v / period)
        ink = 1.0 - rgb[..., c] / 255.0
        out[..., c] = np.where(ink > screen, 0.0, 255.0)
    mix = rng.uniform(0.15, 0.3)
    return (1 - mix) * rgb + mix * out


def paper_grain(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Multiplicative paper texture: fine fibre noise plus low-frequency mottling."""
    h, w = shape
    fine = rng.normal(0.0, 0.012, (h, w)).astype(np.float32)
    coarse = rng.normal(0.0, 0.008, (h // 24 + 2, w // 24 + 2)).astype(np.float32)
    coarse = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return 1.0 + fine + coarse


def make_print_medium(
    picture: np.ndarray, face_box: Sequence[float], rng: np.random.Generator
) -> Medium:
    """A photo printed on a sheet with a white margin (see :func:`print_tone`), grain and
    optionally a halftone screen; a slight blur is the ink spreading into the paper."""
    ph, pw = picture.shape[:2]
    aspect = pw / ph
    sheet_w, sheet_h = PRINT_SIZE_M if aspect <= 1.15 else PRINT_SIZE_M[::-1]
    texel = 1.0 / PRINT_TEXELS_PER_M
    tw, th = round(sheet_w / texel), round(sheet_h / texel)
    dw, dh = fit_inside(aspect, sheet_w - 2 * PRINT_MARGIN_M, sheet_h - 2 * PRINT_MARGIN_M)
    iw, ih = round(dw / texel), round(dh / texel)
    ox, oy = (tw - iw) // 2, (th - ih) // 2

    paper = np.array([rng.uniform(238, 248), rng.uniform(236, 244), rng.uniform(224, 236)])
    sheet = np.empty((th, tw, 3), np.float32)
    sheet[:] = paper
    photo = cv2.resize(picture.astype(np.float32), (iw, ih), interpolation=cv2.INTER_CUBIC)
    photo = print_tone(np.clip(photo, 0, 255), rng)
    if rng.random() < 0.65:  # laser / inkjet; the rest are photo-paper prints without dots
        photo = halftone(photo, rng)
    sheet[oy : oy + ih, ox : ox + iw] = photo
    sheet = cv2.GaussianBlur(sheet, (0, 0), rng.uniform(0.5, 0.8))
    sheet *= paper_grain((th, tw), rng)[..., None]
    # uneven room light across the sheet: a gentle linear gradient
    gx, gy = rng.uniform(-0.06, 0.06, 2)
    ramp_x = np.linspace(-1, 1, tw, dtype=np.float32)[None, :] * gx
    ramp_y = np.linspace(-1, 1, th, dtype=np.float32)[:, None] * gy
    sheet *= (1.0 + ramp_x + ramp_y)[..., None]

    fx, fy, fw, fh = face_box
    face_u = (ox + (fx + fw / 2) / pw * iw) * texel - tw * texel / 2
    face_v = (oy + (fy + fh / 2) / ph * ih) * texel - th * texel / 2
    face_w = fw / pw * iw * texel
    corner = 0.0005 / texel  # a cut sheet's corners are not perfectly sharp
    return Medium(
        sheet, (tw * texel, th * texel), (face_u, face_v, face_w), ((0, 0, tw, th), corner)
    )


def edge_alpha(medium: Medium, ramp: float) -> np.ndarray:
    """The medium's coverage with ``PAD`` empty texels around it: an anti-aliased edge
    ``ramp`` texels wide, which the warp shrinks to about one camera pixel."""
    th, tw = medium.texture.shape[:2]
    (x0, y0, x1, y1), radius = medium.outline
    rect = (PAD + x0 - 0.5, PAD + y0 - 0.5, PAD + x1 - 0.5, PAD + y1 - 0.5)
    return rounded_rect_alpha((th + 2 * PAD, tw + 2 * PAD), rect, radius, min(ramp, MAX_RAMP))


def optics(medium: Medium, texels_per_px: float) -> Medium:
    """Blur the texture by :data:`OPTICS_SIGMA_PX` camera pixels (the lens's low-pass
    before sampling), computed at the presentation's typical distance."""
    sigma = OPTICS_SIGMA_PX * texels_per_px
    if sigma < 0.3:
        return medium
    blurred = cv2.GaussianBlur(medium.texture, (0, 0), sigma)
    return Medium(blurred, medium.size_m, medium.face_m, medium.outline, medium.pad)


def with_edge(medium: Medium, alpha: np.ndarray) -> Medium:
    """Surround the texture with ``PAD`` empty texels and the alpha of :func:`edge_alpha`;
    RGB becomes premultiplied, so bilinear sampling at the edge blends towards
    transparent, not towards black."""
    rgb = cv2.copyMakeBorder(medium.texture, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=0)
    rgb = cv2.multiply(rgb, cv2.merge([alpha, alpha, alpha]))
    return Medium(cv2.merge([rgb, alpha]), medium.size_m, medium.face_m, medium.outline, PAD)


def bend_print(
    medium: Medium, bend_deg: float, light_side: float, depth_m: float, bulge: float
) -> Medium:
    """The sheet bent around a vertical axis into a cylinder arc of ``bend_deg``.

    ``cv2.remap`` re-draws the sheet as the plane through its centre would show it: arc
    length ``s`` lands at ``x = R sin(s / R)`` (the sides are compressed), each column is
    scaled by its depth (``bulge`` +1: the middle bulges towards the camera and the edges
    recede and shrink; -1: the edges come forward), so the top and bottom edges curve, and
    the sides are shaded as their normals turn. The perspective warp of the plane follows.
    Depth scaling is about the medium's centre, not the optical axis (a small error).
    """
    th, tw = medium.texture.shape[:2]
    pad = medium.pad
    inner_w, inner_h = tw - 2 * pad, th - 2 * pad
    texel = medium.size_m[0] / inner_w
    radius = inner_w / math.radians(max(bend_deg, 1.0))  # texels
    s = np.linspace(-(inner_w / 2 + pad), inner_w / 2 + pad, 4 * tw)
    phi = s / radius
    dz = bulge * radius * (1 - np.cos(phi)) * texel  # metres behind the centre's plane
    k = depth_m / (depth_m + dz)
    xp = radius * np.sin(phi) * k
    edge = np.abs(s) <= inner_w / 2
    out_w = int(math.ceil(2 * np.abs(xp[edge]).max()))
    out_h = int(math.ceil(inner_h * k[edge].max()))
    x_out = np.arange(out_w + 2 * pad, dtype=np.float64) - (pad - 0.5 + out_w / 2)
    src_s = np.interp(x_out, xp, s, left=np.nan, right=np.nan)
    src_k = np.interp(x_out, xp, k, left=1.0, right=1.0)
    map_x = np.where(np.isnan(src_s), -10.0, src_s + pad - 0.5 + inner_w / 2).astype(np.float32)
    y_out = np.arange(out_h + 2 * pad, dtype=np.float32) - np.float32(pad - 0.5 + out_h / 2)
    map_y = np.outer(y_out, (1.0 / src_k).astype(np.float32))
    map_y += np.float32(pad - 0.5 + inner_h / 2)
    map_x = np.repeat(map_x[None, :], len(y_out), axis=0)
    bent = cv2.remap(
        medium.texture,
        map_x,
        map_y,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    angle = np.nan_to_num(src_s) / radius
    shade = 1.0 - 0.25 * (1.0 - np.cos(angle)) + 0.12 * light_side * np.sin(angle)
    shade4 = np.stack([shade, shade, shade, np.ones_like(shade)], axis=1).astype(np.float32)
    bent *= shade4[None]  # RGB only: alpha is multiplied by one
    fu, fv, fw = medium.face_m
    s_face = fu / texel
    k_face = depth_m / (depth_m + bulge * radius * (1 - math.cos(s_face / radius)) * texel)
    face = (radius * math.sin(s_face / radius) * k_face * texel, fv * k_face, fw * k_face)
    outline = ((0, 0, out_w, out_h), medium.outline[1])
    return Medium(bent, (out_w * texel, out_h * texel), face, outline, pad)


# --------------------------------------------------------------------------- screen medium


@dataclass(frozen=True)
class ScreenLook:
    """One device's display settings for a whole presentation (a video keeps them)."""

    screen: Screen
    landscape: bool
    gamma: float
    gain: float
    black: float
    white_point: tuple[float, float, float]
    leak: float  # light between subpixels: lower = stronger grid and moire
    row_gap: float


def draw_screen_look(screen: Screen, aspect: float, rng: np.random.Generator) -> ScreenLook:
    """Random but plausible display settings; hand-held devices turn landscape for
    landscape pictures (a monitor is landscape already)."""
    landscape = screen.name != "monitor" and aspect > 1.15
    oled = rng.random() < 0.4
    return ScreenLook(
        screen=screen,
        landscape=landscape,
        gamma=rng.uniform(0.85, 1.0),
        gain=rng.uniform(1.0, 1.12),
        black=rng.uniform(1, 4) if oled else rng.uniform(6, 14),
        white_point=(rng.uniform(0.9, 0.96), rng.uniform(0.97, 1.0), 1.0),
        leak=rng.uniform(0.25, 0.5),
        row_gap=rng.uniform(0.5, 0.75),
    )


def screen_tone(rgb: np.ndarray, look: ScreenLook) -> np.ndarray:
    """A display as a camera sees it: brighter and lower-gamma than the scene, a blue-ish
    white point and blacks that glow (LCD backlight) or nearly not (OLED)."""
    out = 255.0 * (np.clip(rgb, 0, 255) / 255.0) ** look.gamma * look.gain
    out = look.black + out * (1 - look.black / 255.0)
    return (out * np.array(look.white_point, np.float32)).astype(np.float32)


def subpixel_mask(look: ScreenLook) -> np.ndarray:
    """One 3x3-texel screen pixel: R, G, B stripes and a darker gap row, mean 1 per channel
    so the grid modulates the picture without changing its brightness."""
    tile = np.full((3, 3, 3), look.leak, np.float32)
    for c in range(3):
        tile[:, c, c] = 1.0
    tile[2] *= look.row_gap
    return tile / tile.mean(axis=(0, 1), keepdims=True)


class ScreenCanvas:
    """A display showing pictures of one size: the bezel, subpixel grid and geometry are
    computed once, so a video only pays for its pixels (see :meth:`medium`).

    The picture is letterboxed in black, expanded to 3x3 texels per screen pixel (RGB
    stripes, a darker gap row), and framed by a black bezel with rounded corners.
    """

    def __init__(
        self, look: ScreenLook, picture_shape: tuple[int, ...], face_box: Sequence[float]
    ) -> None:
        scr = look.screen
        self.look = look
        body_w, body_h = scr.size_m[::-1] if look.landscape else scr.size_m
        screen_w = body_w - 2 * scr.bezel_m
        screen_h = body_h - 2 * scr.bezel_m - scr.chin_m
        px_w = scr.pixels_across
        if look.landscape:
            px_w = round(scr.pixels_across * screen_w / screen_h)
        texel = screen_w / (3 * px_w)
        px_h = round(screen_h / (3 * texel))
        ph, pw = picture_shape[:2]
        dw, dh = fit_inside(pw / ph, px_w, px_h)
        self.iw, self.ih = max(1, round(dw)), max(1, round(dh))
        self.ox, self.oy = (px_w - self.iw) // 2, (px_h - self.ih) // 2
        self.px = (px_w, px_h)
        self.bz = round(scr.bezel_m / texel)
        tw, th = 3 * px_w + 2 * self.bz, 3 * px_h + 2 * self.bz + round(scr.chin_m / texel)
        bezel_rgb = np.float32((14, 14, 16))  # glossy black plastic/glass
        rect = (self.bz - 0.5, self.bz - 0.5, self.bz + 3 * px_w - 0.5, self.bz + 3 * px_h - 0.5)
        inside = rounded_rect_alpha(
            (th, tw), rect, max(0.0, scr.corner_m - scr.bezel_m) / texel, 1.0
        )
        inside = inside[..., None]
        self.bezel = bezel_rgb * (1 - inside)  # the bezel, zero where the screen shows
        screen = inside[self.bz : self.bz + 3 * px_h, self.bz : self.bz + 3 * px_w]
        self.mask = np.tile(subpixel_mask(look), (px_h, px_w, 1)) * screen  # grid x corners
        fx, fy, fw, fh = face_box
        face_u = (self.bz + 3 * (self.ox + (fx + fw / 2) / pw * self.iw)) * texel - tw * texel / 2
        face_v = (self.bz + 3 * (self.oy + (fy + fh / 2) / ph * self.ih)) * texel - th * texel / 2
        self.face_m = (face_u, face_v, 3 * fw / pw * self.iw * texel)
        self.size_m = (tw * texel, th * texel)
        self.outline = ((0, 0, tw, th), scr.corner_m / texel)

    def medium(self, picture: np.ndarray) -> Medium:
        """The device showing ``picture`` (no edge yet, see :func:`with_edge`)."""
        px_w, px_h = self.px
        pixels = np.zeros((px_h, px_w, 3), np.float32)
        interp = cv2.INTER_AREA if self.iw < picture.shape[1] else cv2.INTER_LINEAR
        shown = cv2.resize(picture, (self.iw, self.ih), interpolation=interp)
        pixels[self.oy : self.oy + self.ih, self.ox : self.ox + self.iw] = shown
        pixels = screen_tone(pixels, self.look)
        grid = np.repeat(np.repeat(pixels, 3, axis=0), 3, axis=1)
        grid *= self.mask
        body = self.bezel.copy()
        bz = self.bz
        body[bz : bz + 3 * px_h, bz : bz + 3 * px_w] += grid
        return Medium(body, self.size_m, self.face_m, self.outline)


# --------------------------------------------------------------------------- motion


def medium_kind(kind: str, device: str | None) -> str:
    """``print``, or the screen name a kind shows its picture on."""
    if kind == CLIP_KIND:
        return device or "phone"
    return kind.split("_", 1)[0]


def poses_for(
    kind: str,
    motion_key: str,
    frames: int,
    fps: float,
    depth: float,
    face_m: tuple[float, float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Per-frame pose (yaw, pitch, roll deg; x, y, z m) of the medium's centre.

    The face is placed near the image centre (+-50 x +-35 px) at distance ``depth``, then
    the kind's static tilt, slow sway and tremor are added; ``print_approach`` instead eases
    its distance from ~0.8 m to ~0.35 m (nearer, see :data:`APPROACH_FACE_PX`, when its
    face would be too small or too big for the detector there).
    """
    m = MOTIONS[motion_key]
    t = np.arange(frames) / fps
    poses = np.zeros((frames, 6))
    for axis in range(3):
        poses[:, axis] = rng.uniform(-m.tilt_deg[axis], m.tilt_deg[axis])
        poses[:, axis] += sway(rng, t, m.sway_deg[axis], m.freq_hz, m.components)
        poses[:, axis] += tremor(rng, frames, m.tremor_deg)
        poses[:, 3 + axis] = sway(rng, t, m.sway_m[axis], m.freq_hz, 3) + tremor(
            rng, frames, m.tremor_m
        )
    if kind == "print_approach":
        face_w = face_m[2]
        start = min(APPROACH_FROM_M, FOCAL_PX * face_w / APPROACH_FACE_PX[0]) + rng.uniform(
            -0.03, 0.0
        )
        end = max(APPROACH_TO_M, FOCAL_PX * face_w / APPROACH_FACE_PX[1]) + rng.uniform(-0.0, 0.02)
        hold = rng.uniform(0.05, 0.15)  # a moment still before and after the movement
        z = start + (end - start) * smoothstep((t / max(t[-1], 1e-9) - hold) / (1 - 2 * hold))
    else:
        z = np.full(frames, depth)
    poses[:, 5] += z
    dx, dy = rng.uniform(-50, 50), rng.uniform(-35, 35)
    fu, fv, _ = face_m
    poses[:, 3] += dx * poses[:, 5] / FOCAL_PX - fu
    poses[:, 4] += dy * poses[:, 5] / FOCAL_PX - fv
    return poses


# --------------------------------------------------------------------------- compositing


def prepare_background(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A room behind the medium: a random 4:3 crop (mirrored half of the time), resized to
    640x480 and defocused (the camera focuses on the medium). Float32 RGB."""
    h, w = image.shape[:2]
    zoom = rng.uniform(1.0, 1.4)
    cw = min(w, h * 4 / 3) / zoom
    ch = cw * 3 / 4
    x0 = rng.uniform(0, w - cw)
    y0 = rng.uniform(0, h - ch)
    crop = image[int(y0) : int(y0 + ch), int(x0) : int(x0 + cw)]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    bg = cv2.resize(crop.astype(np.float32), (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(bg, (0, 0), rng.uniform(1.0, 2.5))


def warp_medium(medium: Medium, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project the medium's rectangle and warp its texture onto the frame: returns the
    premultiplied RGBA frame layer and the texture-to-frame homography."""
    th, tw = medium.texture.shape[:2]
    p = medium.pad
    src = np.float32(
        [
            [p - 0.5, p - 0.5],
            [tw - p - 0.5, p - 0.5],
            [tw - p - 0.5, th - p - 0.5],
            [p - 0.5, th - p - 0.5],
        ]
    )
    dst = project_corners(medium.size_m, pose).astype(np.float32)
    homography = cv2.getPerspectiveTransform(src, dst)
    layer = cv2.warpPerspective(
        medium.texture,
        homography,
        (FRAME_W, FRAME_H),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    return layer, homography


@dataclass(frozen=True)
class Glare:
    """A soft reflection of a lamp on a screen's glass, fixed to a place on the plane for
    the base pose and sliding as the plane turns (a mirror turns the reflection twice)."""

    centre: tuple[float, float]  # in units of the medium's width/height, at the base pose
    sigma: float  # metres on the glass
    peak: float  # added 0..255 at the centre, before the camera's gain
    veil: float  # uniform reflection of the room


def draw_glare(rng: np.random.Generator) -> Glare:
    """Most screens show a lamp's highlight, some only the dim room."""
    strong = rng.random() < 0.8
    return Glare(
        centre=(rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.65)),
        sigma=rng.uniform(0.01, 0.035),
        peak=rng.uniform(30, 90) if strong else rng.uniform(10, 25),
        veil=rng.uniform(2, 8),
    )


def glare_layer(
    glare: Glare, medium: Medium, homography: np.ndarray, pose: np.ndarray, base: np.ndarray
) -> np.ndarray:
    """The glare in frame coordinates: a low-resolution blob on the medium, warped with the
    same homography (cheap, and it stays glued to the plane)."""
    th, tw = medium.texture.shape[:2]
    lw = 48
    lh = max(8, round(lw * th / tw))
    dyaw, dpitch = np.radians(pose[:2] - base[:2])
    w_m, h_m = medium.size_m
    cx = glare.centre[0] + pose[5] * math.tan(np.clip(2 * dyaw, -1.2, 1.2)) / w_m
    cy = glare.centre[1] - pose[5] * math.tan(np.clip(2 * dpitch, -1.2, 1.2)) / h_m
    xs = (np.arange(lw, dtype=np.float32) + 0.5) / lw
    ys = (np.arange(lh, dtype=np.float32) + 0.5) / lh
    dx = (xs[None, :] - cx) * w_m / glare.sigma
    dy = (ys[:, None] - cy) * h_m / (glare.sigma * 1.4)
    blob = glare.veil + glare.peak * np.exp(-0.5 * (dx * dx + dy * dy))
    sx, sy = tw / lw, th / lh
    scale = np.array([[sx, 0, (sx - 1) / 2], [0, sy, (sy - 1) / 2], [0, 0, 1]])
    return cv2.warpPerspective(
        blob.astype(np.float32), homography @ scale, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR
    )


def print_shading(pose: np.ndarray, light: np.ndarray, ambient: float) -> float:
    """Brightness of a matte sheet: ambient plus Lambert from a lamp, relative to frontal,
    so tilting the print towards or away from the lamp changes its brightness."""
    normal = rotation(*pose[:3]) @ np.array([0.0, 0.0, -1.0])
    frontal = max(-light[2], 1e-3)
    return ambient + (1 - ambient) * max(0.0, float(normal @ light)) / frontal


@dataclass(frozen=True)
class CameraLook:
    """The door camera's imperfections for one presentation."""

    blur: float
    noise: float
    target: float  # mean level (0..255) the auto-exposure aims the centre of the frame at


NOISE_MARGIN = 32
AE_SPEED = 0.3  # fraction of the exposure error corrected per frame


def metered_level(frame: np.ndarray) -> float:
    """Centre-weighted mean brightness, as a camera's auto-exposure meters it."""
    small = cv2.resize(frame, (64, 48), interpolation=cv2.INTER_AREA).mean(axis=2)
    yy, xx = np.mgrid[0:48, 0:64]
    weight = np.exp(-(((xx - 31.5) / 22) ** 2 + ((yy - 23.5) / 17) ** 2))
    return float((small * weight).sum() / weight.sum())


def auto_exposure(frame: np.ndarray, target: float, previous: float | None) -> float:
    """The gain after this frame: a bright screen in a dim room is pulled down and a dark
    scene lifted (within limits), with a lag of a few frames like a real camera."""
    wanted = float(np.clip(target / max(metered_level(frame), 1.0), 0.6, 1.6))
    if previous is None:
        return wanted
    return previous + AE_SPEED * (wanted - previous)


def noise_bank(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A field of Gaussian sensor noise a little larger than a frame; each frame adds a
    randomly shifted, sign-flipped window of it (fresh normal noise per frame costs more
    than the rest of the camera model, and nobody can see the difference)."""
    shape = (FRAME_H + NOISE_MARGIN, FRAME_W + NOISE_MARGIN, 3)
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def camera(
    frame: np.ndarray, look: CameraLook, gain: float, noise: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Defocus, exposure ``gain``, Gaussian sensor noise, 8-bit quantisation (RGB uint8)."""
    frame = cv2.GaussianBlur(frame, (0, 0), look.blur)
    frame *= np.float32(gain)
    dy, dx = rng.integers(0, NOISE_MARGIN, 2)
    window = noise[dy : dy + FRAME_H, dx : dx + FRAME_W]
    if rng.random() < 0.5:
        frame -= window
    else:
        frame += window
    return np.clip(frame, 0, 255, out=frame).astype(np.uint8)


def _as_frames(source: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """A photo is a one-frame video; frames are float32 RGB (grey is expanded)."""
    if isinstance(source, np.ndarray) and source.ndim in (2, 3):
        source = [source]
    frames = [np.asarray(f, np.float32) for f in source]
    frames = [np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f[..., :3] for f in frames]
    if not frames:
        raise ValueError("empty source")
    return frames


def render_presentation(
    kind: str,
    source: np.ndarray | list[np.ndarray],
    rng: np.random.Generator,
    frames: int,
    background: np.ndarray,
    *,
    face_box: Sequence[float] | None = None,
    device: str | None = None,
    fps: float = 10.0,
) -> list[np.ndarray]:
    """One SIMULATED attack: ``frames`` RGB uint8 640x480 frames of ``source`` on a medium.

    ``source`` is the picture to show (a photo already cropped around its face, see
    :func:`crop_around_face`) or a list of video frames played in order (looped when
    shorter than ``frames``). ``face_box`` is the face's ``(x, y, w, h)`` in the source's
    pixels (default: centred, 1/2.2 of the picture); it decides the distance the medium is
    held at so the face comes out 100-220 px wide. ``device`` picks the screen of
    ``screen_video`` (phone, tablet, monitor). ``background`` is any RGB photo without a face.
    ``fps`` only sets the speed of the hand's motion.
    """
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown attack kind {kind!r}; expected one of {', '.join(ALL_KINDS)}")
    if kind == CLIP_KIND and (device or "phone") not in SCREENS:
        raise ValueError(f"unknown device {device!r}; expected one of {', '.join(SCREENS)}")
    pictures = _as_frames(source)
    box = tuple(face_box) if face_box is not None else default_face_box(pictures[0])
    what = medium_kind(kind, device)
    motion_key = f"{CLIP_KIND}:{what}" if kind == CLIP_KIND else kind
    bg = prepare_background(background, rng)
    cam = CameraLook(
        blur=rng.uniform(0.4, 0.8), noise=rng.uniform(2.0, 4.0), target=rng.uniform(95, 130)
    )
    noise = noise_bank(rng, cam.noise)
    room = rng.uniform(0.6, 0.95)  # indoor light: dims the room and, equally, a print
    bg *= room

    look = canvas = None
    if what != "print":
        look = draw_screen_look(SCREENS[what], pictures[0].shape[1] / pictures[0].shape[0], rng)
        canvas = ScreenCanvas(look, pictures[0].shape, box)
    texture_seed = int(rng.integers(2**32))  # the same paper (grain, dots) in every frame

    def build(picture: np.ndarray) -> Medium:
        if canvas is None:
            return make_print_medium(picture, box, np.random.default_rng(texture_seed))
        return canvas.medium(picture)

    # the face's width on the medium decides the distance (so the face comes out a size the
    # detector and the door expect); the distance sets how many texels fall on one pixel
    first = build(pictures[0])
    face_px = rng.uniform(
        *(CLIP_PHONE_FACE_PX if kind == CLIP_KIND and what == "phone" else FACE_PX)
    )
    depth = float(np.clip(FOCAL_PX * first.face_m[2] / face_px, MIN_DEPTH_M, 1.2))
    poses = poses_for(kind, motion_key, frames, fps, depth, first.face_m, rng)
    texels_per_m = first.texture.shape[1] / first.size_m[0]
    ramp = max(1.0, texels_per_m * float(np.median(poses[:, 5])) / FOCAL_PX)
    alpha_edge = edge_alpha(first, ramp)
    still = with_edge(optics(first, ramp), alpha_edge) if len(pictures) == 1 else None

    light = rng.normal(0, 1, 3) * (0.4, 0.4, 0.0) + (0.0, -0.4, -1.0)  # lamp above the camera
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.45, 0.7)
    glare = draw_glare(rng) if look is not None else None
    t = np.arange(frames) / fps
    bend = rng.uniform(50, 100) + sway(rng, t, 12.0, (0.1, 0.3), 2)
    light_side = float(rng.choice([-1.0, 1.0]))
    bulge = float(rng.choice([-1.0, 1.0]))
    drift = sway(rng, t, 0.03, (0.1, 0.4), 2)  # the auto-exposure hunting a little

    out = []
    exposure: float | None = None
    for i in range(frames):
        if still is None:
            medium = with_edge(optics(build(pictures[i % len(pictures)]), ramp), alpha_edge)
        else:
            medium = still
        if kind == "print_bent":
            medium = bend_print(medium, float(bend[i]), light_side, float(poses[i, 5]), bulge)
        layer, homography = warp_medium(medium, poses[i])
        alpha = layer[..., 3:4]
        if look is None:
            light_gain = room * print_shading(poses[i], light, ambient)
        else:
            view = abs(float(rotation(*poses[i, :3])[2, 2]))  # cos of the viewing angle
            light_gain = 0.8 + 0.2 * view
        frame = bg * (1.0 - alpha)
        frame += layer[..., :3] * np.float32(light_gain)
        if glare is not None:
            frame += (glare_layer(glare, medium, homography, poses[i], poses[0]) * alpha[..., 0])[
                ..., None
            ]
        exposure = auto_exposure(frame, cam.target, exposure)
        gain = exposure * (1.0 + drift[i] + rng.normal(0, 0.004))
        out.append(camera(frame, cam, gain, noise, rng))
    return out


# --------------------------------------------------------------------------- the data set


@dataclass(frozen=True)
class Task:
    """One presentation to render and write (picklable: a worker loads its own source)."""

    key: str
    kind: str
    subject: str
    source: str  # photo or clip path
    out: str  # path relative to the output folder
    device: str | None
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 of the picture in the source
    face_box: tuple[float, float, float, float]  # in the crop
    clip_indices: tuple[int, ...] = ()


def load_rgb(path: str | Path) -> np.ndarray:
    """An RGB uint8 image (the project's loader when available, so sizes match detection)."""
    from pi_facegate.vision.images import load_image

    return load_image(path)


def read_clip(path: str | Path) -> tuple[list[np.ndarray], float]:
    """All frames of a video (RGB) and its frame rate."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise RuntimeError(f"{path}: no frames could be read")
    return frames, fps


def resample_indices(
    n_source: int, src_fps: float, fps: float, frames: int, start: int
) -> list[int]:
    """Source frame shown at each output frame when a ``src_fps`` clip plays at ``fps``;
    a clip shorter than the presentation loops, as a phone's player would."""
    return [(start + round(i * src_fps / fps)) % n_source for i in range(frames)]


_BACKGROUNDS: dict[str, np.ndarray] = {}


def _background(path: str) -> np.ndarray:
    if path not in _BACKGROUNDS:
        _BACKGROUNDS[path] = load_rgb(path)
    return _BACKGROUNDS[path]


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the pool already uses every core


def run_task(args: tuple[Task, Path, list[str], int, int, float]) -> tuple[Task, int]:
    """Render one presentation and write it as mp4; returns the task and bytes written."""
    task, out_dir, backgrounds, seed, frames, fps = args
    rng = np.random.default_rng([seed, zlib.crc32(task.key.encode())])
    background = _background(backgrounds[int(rng.integers(len(backgrounds)))])
    x0, y0, x1, y1 = task.crop
    if task.clip_indices:
        clip, _ = read_clip(task.source)
        source: np.ndarray | list[np.ndarray] = [clip[i][y0:y1, x0:x1] for i in task.clip_indices]
    else:
        source = load_rgb(task.source)[y0:y1, x0:x1]
    video = render_presentation(
        task.kind,
        source,
        rng,
        frames,
        background,
        face_box=task.face_box,
        device=task.device,
        fps=fps,
    )
    path = out_dir / task.out
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, video, fps)
    return task, path.stat().st_size


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Write RGB frames as an mp4 (fourcc mp4v), or fail loudly."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write mp4v video here")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


class StillDetector:
    """The project's own still-photo detector (the same one ``facegate eval`` uses)."""

    def __init__(self) -> None:
        from pi_facegate.config.loader import load_config
        from pi_facegate.daemon import wiring
        from pi_facegate.paths import default_config_path

        self.recognizer = wiring.build_recognizer(load_config(default_config_path()))

    def faces(self, rgb: np.ndarray) -> list:
        return self.recognizer.detect_still(rgb)

    def close(self) -> None:
        self.recognizer.close()


def photo_subjects(
    root: Path,
    detector: StillDetector,
    people: int | None,
    per_person: int,
    log: Callable[[str], None],
) -> tuple[list[tuple[str, Path]], list[Task], list[str]]:
    """Enrolment photos and photo attack sources of ``five_celebrity_faces``.

    Per person, train and test photos sorted by file name; "usable" means exactly one face
    at least 80 px wide. The first 3 usable ones enrol, the next ``per_person`` are sources.
    Returns (enrol rows, source tasks without kind, warnings).
    """
    base = root / "five_celebrity_faces"
    names = sorted(
        {p.name for split in ("train", "test") for p in (base / split).iterdir() if p.is_dir()}
    )
    if people is not None:
        names = names[:people]
    enrol: list[tuple[str, Path]] = []
    sources: list[Task] = []
    warnings = []
    for name in names:
        files = sorted(
            (p for split in ("train", "test") for p in (base / split / name).glob("*.jpg")),
            key=lambda p: (p.name, p.parent.parent.name),
        )
        usable = 0
        for path in files:
            if usable >= ENROL_PHOTOS + per_person:
                break
            image = load_rgb(path)
            faces = detector.faces(image)
            if len(faces) != 1 or faces[0].box[2] < MIN_SOURCE_FACE_PX:
                log(f"  skip {path.relative_to(root)}: {len(faces)} face(s)")
                continue
            usable += 1
            if usable <= ENROL_PHOTOS:
                enrol.append((name, path))
                continue
            crop, box = crop_around_face(image, faces[0].box)
            x, y, w, h = faces[0].box
            x0, y0 = int(round(x - box[0])), int(round(y - box[1]))
            sources.append(
                Task(
                    key=f"{name}/{path.name}",
                    kind="",
                    subject=name,
                    source=str(path),
                    out=f"{name}_{usable - ENROL_PHOTOS:02d}.mp4",
                    device=None,
                    crop=(x0, y0, x0 + crop.shape[1], y0 + crop.shape[0]),
                    face_box=tuple(float(v) for v in box),
                )
            )
        if usable < ENROL_PHOTOS + per_person:
            warnings.append(
                f"{name}: only {usable} usable photos (wanted {ENROL_PHOTOS + per_person})"
            )
    return enrol, sources, warnings


def clip_window(
    frames: list[np.ndarray],
    detector: StillDetector,
    indices_at: Callable[[int], list[int]],
    fixed_start: bool,
) -> tuple[int, list[int], tuple[int, int, int, int], tuple[float, float, float, float], float]:
    """Where to play a clip and what part of it to show.

    With ``fixed_start`` (enrolment is frame 0) the clip plays from frame 0; otherwise from
    the start whose sampled frames most often hold exactly one face (the Hamilton clip opens
    on faceless shots). The picture is cropped to the region the face moves in (its
    centres' extent plus 1.1 face widths each side), so the face fills the screen as when
    an attacker zooms the video.
    Returns (start, indices, crop, face box in the crop, fraction with one face).
    """
    cache: dict[int, list] = {}

    def faces_at(i: int) -> list:
        if i not in cache:
            cache[i] = detector.faces(frames[i])
        return cache[i]

    starts = [0] if fixed_start else list(range(0, len(frames), 5))
    best = None
    for start in starts:
        sampled = indices_at(start)[::5]
        one = sum(len(faces_at(i)) == 1 for i in sampled) / len(sampled)
        if best is None or one > best[1] + 1e-9:
            best = (start, one)
    start, one = best
    indices = indices_at(start)
    boxes = np.array([faces_at(i)[0].box for i in indices[::5] if len(faces_at(i)) == 1])
    h, w = frames[0].shape[:2]
    if len(boxes) == 0:
        return start, indices, (0, 0, w, h), default_face_box(frames[0]), one
    fw = float(np.median(boxes[:, 2]))
    fh = float(np.median(boxes[:, 3]))
    cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    mx_, my_ = CROP_EXPAND / 2 * fw, CROP_EXPAND / 2 * fh  # a still face gets the x2.2 crop
    x0, x1 = int(max(0, cx.min() - mx_)), int(min(w, cx.max() + mx_))
    y0, y1 = int(max(0, cy.min() - my_)), int(min(h, cy.max() + my_))
    mx, my = float(np.median(cx)), float(np.median(cy))
    return start, indices, (x0, y0, x1, y1), (mx - fw / 2 - x0, my - fh / 2 - y0, fw, fh), one


def find_one(root: Path, name: str) -> Path:
    """A file under facedata by relative path, or by name anywhere under it."""
    direct = root / name
    if direct.is_file():
        return direct
    found = sorted(root.rglob(Path(name).name))
    if not found:
        raise FileNotFoundError(f"{name} not found under {root}")
    return found[0]


def clip_tasks(
    root: Path,
    out_dir: Path,
    detector: StillDetector,
    frames: int,
    fps: float,
    log: Callable[[str], None],
) -> tuple[list[tuple[str, str, str]], list[Task], list[str]]:
    """Enrolment rows (path, subject, source), the 3 screen_video tasks of every clip and
    a line per clip saying what part of it is shown."""
    enrol, tasks, notes = [], [], []
    for rel, subject, enrol_name in CLIPS:
        path = find_one(root, rel)
        clip, src_fps = read_clip(path)

        indices_at = functools.partial(resample_indices, len(clip), src_fps, fps, frames)
        start, indices, crop, box, one = clip_window(clip, detector, indices_at, enrol_name is None)
        note = (
            f"{path.name}: {len(clip)} frames at {src_fps:.2f} fps, played from frame {start}, "
            f"crop x0,y0,x1,y1 = {crop}, one face in {100 * one:.0f} % of sampled source frames"
        )
        notes.append(note)
        log(f"  {note}")
        if enrol_name is None:
            enrol_path = out_dir / "enrol" / f"{subject}.png"
            enrol_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(enrol_path), cv2.cvtColor(clip[0], cv2.COLOR_RGB2BGR))
            enrol.append((f"enrol/{subject}.png", subject, str(path)))
        else:
            photo = find_one(root, enrol_name)
            enrol.append((str(photo), subject, str(photo)))
        for device in CLIP_DEVICES:
            tasks.append(
                Task(
                    key=f"{CLIP_KIND}/{subject}/{device}",
                    kind=CLIP_KIND,
                    subject=subject,
                    source=str(path),
                    out=f"{CLIP_KIND}/{subject}_{device}.mp4",
                    device=device,
                    crop=crop,
                    face_box=box,
                    clip_indices=tuple(indices),
                )
            )
    return enrol, tasks, notes


def backgrounds(root: Path, detector: StillDetector, log: Callable[[str], None]) -> list[str]:
    """Background photos: ``face_content == none`` in ``face_content_labels.csv``, real
    photos of things (not the synthetic, drawn-on, captcha or microscopy images), big
    enough for a room, and no face found by the detector in their 640x480 version."""
    folder = root / "no_face_and_multi_face_misc"
    picked = []
    with open(folder / "face_content_labels.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            note = row.get("note", "").lower()
            path = folder / row["file"]
            if row["face_content"].strip() != "none" or path.suffix.lower() not in {
                ".jpg",
                ".jpeg",
                ".png",
            }:
                continue
            if any(word in note for word in NOT_A_ROOM):
                continue
            image = load_rgb(path)
            if min(image.shape[:2]) < 140:
                continue
            small = cv2.resize(image, (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)
            if detector.faces(small):
                log(f"  background {path.name} skipped: the detector finds a face")
                continue
            picked.append(str(path))
    if not picked:
        raise RuntimeError(f"no usable background photo in {folder}")
    return picked


#: notes of face_content_labels.csv that mark an image nobody would have behind a door
NOT_A_ROOM = ("synthetic", "not a photo", "drawn", "captcha", "microscopy")


README = """SIMULATED PRESENTATION ATTACKS - NOT REAL ATTACK RECORDINGS
===========================================================

Every video in this folder is SIMULATED. No printer, phone, tablet, monitor or camera was
used: a program (tools/make_attacks.py of pi-facegate) drew real photographs and real video
clips of real people onto a virtual sheet of paper or a virtual screen, moved it in 3-D in
front of a photo of a room, and imitated a camera. Any number measured on this set is a
number on simulated attacks and must be reported as such.

How the videos were made
- Medium: the source photo cropped around its face (face box x2.2), so the face fills the
  medium. Prints: a 15x20 cm sheet with a white margin, print tone curve (contrast about
  25..235, mild gamma, saturation x0.8, warm paper), paper grain, in most prints a halftone
  dot screen, slight ink blur; one kind is bent into a cylinder about its vertical axis.
  Screens (phone 7x14 cm, tablet 16x22 cm, monitor 35x25 cm): black bezel with rounded
  corners, picture letterboxed in black, display gamma/brightness/cool white point, an RGB
  subpixel grid (simulated at about one camera pixel so that it aliases into moire), and a
  moving specular glare.
- Geometry: a pinhole camera (640x480, f = 560 px) sees the medium at a distance where the
  face is about 135-195 px wide (105-140 px for a phone playing a clip); hand motion is a
  sum of slow sinusoids plus tremor.
- Background: photos without faces (no_face_and_multi_face_misc), blurred and dimmed to
  the same room light as the print.
- Camera: lens low-pass before sampling, defocus blur, centre-weighted auto exposure with
  jitter, Gaussian noise (sigma 2-4), mp4 (mp4v) encoding.

Kinds: print_still (hand tremor +-1 deg, +-2 mm), print_tilt (+-15 deg), print_swing
(yaw +-30 deg), print_bent (cylinder, 50-100 deg of arc), print_approach (from 0.8 m, or
nearer where the face would be under 120 px there - about 0.55 m for these prints - to
0.35 m), phone_still, phone_moving, tablet_still, tablet_moving, monitor_still,
screen_video (a real clip played on a phone, a tablet and a monitor, resampled to the
output frame rate).

Clips: {clips}

manifest.csv: one row per presentation (label "attack", simulated "yes") and one per
enrolment image (label "enrol", type "enrol", simulated "no": those are the real photos,
or frame 0 of a real clip, that the door should enrol each person from). Enrolment photos
are never attack sources for the same person, except the clip attacks, whose enrolment
image is the clip's frame 0. The real clips themselves are rows too (label "live",
simulated "no"): the same people, live. Column "split" is "tune" for the people the
liveness thresholds were tuned on (katie_hill) and "report" for everyone else.

The pictures come from the shared face data (five_celebrity_faces: no licence stated;
live_clips: SadTalker repository examples, Apache-2.0, footage from HDTF;
face_recognition_examples: MIT). They show real people: do not commit this folder to a
repository or redistribute it.

Seed: {seed}
Command: {command}
Generated: {when}, {total} presentations in {seconds:.0f} s
Counts: {counts}
"""


def main(argv: list[str] | None = None) -> int:
    from pi_facegate.paths import facedata_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=50, help="frames per presentation")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the videos")
    parser.add_argument("--people", type=int, help="first N people of five_celebrity_faces")
    parser.add_argument("--photos-per-person", type=int, default=6, metavar="K")
    parser.add_argument("--kinds", nargs="+", choices=ALL_KINDS, default=list(ALL_KINDS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.fps <= 0 or args.photos_per_person < 0:
        parser.error("--frames and --fps must be positive, --photos-per-person at least 0")
    out_dir = args.out.resolve()
    if out_dir == REPO or REPO in out_dir.parents:
        parser.error(
            f"{out_dir} is inside the repository: the output holds third-party face photos"
        )

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    root = facedata_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    detector = StillDetector()
    try:
        log("choosing photos (detector: exactly one face >= 80 px)")
        enrol, sources, warnings = photo_subjects(
            root, detector, args.people, args.photos_per_person, log
        )
        log("choosing backgrounds")
        bgs = backgrounds(root, detector, log)
        clip_enrol: list[tuple[str, str, str]] = []
        clips: list[Task] = []
        clip_notes: list[str] = []
        if CLIP_KIND in args.kinds:
            log("preparing clips")
            clip_enrol, clips, clip_notes = clip_tasks(
                root, out_dir, detector, args.frames, args.fps, log
            )
    finally:
        detector.close()
    tasks = [
        Task(
            key=f"{kind}/{src.key}",
            kind=kind,
            subject=src.subject,
            source=src.source,
            out=f"{kind}/{src.out}",
            device=None,
            crop=src.crop,
            face_box=src.face_box,
        )
        for kind in PHOTO_KINDS
        if kind in args.kinds
        for src in sources
    ] + clips
    log(f"rendering {len(tasks)} presentations with {args.workers} worker(s)")
    jobs = [(t, out_dir, bgs, args.seed, args.frames, args.fps) for t in tasks]
    done: dict[str, int] = {}
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(
            args.workers, initializer=_init_worker
        ) as pool:
            for i, (task, size) in enumerate(pool.imap_unordered(run_task, jobs), 1):
                done[task.key] = size
                if i % 20 == 0 or i == len(jobs):
                    log(f"  {i}/{len(jobs)} ({time.monotonic() - t0:.0f} s)")
    else:
        for i, job in enumerate(jobs, 1):
            task, size = run_task(job)
            done[task.key] = size
            if i % 20 == 0 or i == len(jobs):
                log(f"  {i}/{len(jobs)} ({time.monotonic() - t0:.0f} s)")

    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "label", "type", "subject", "simulated", "source", "split"])

        def row(path: str, label: str, kind: str, subject: str, simulated: str, source: str):
            split = "tune" if subject in TUNED_SUBJECTS else "report"
            writer.writerow([path, label, kind, subject, simulated, source, split])

        for subject, path in enrol:
            row(str(path), "enrol", "enrol", subject, "no", str(path))
        for path, subject, source in clip_enrol:
            row(path, "enrol", "enrol", subject, "no", source)
        if CLIP_KIND in args.kinds:  # the real clips themselves: live presentations
            for rel, subject, _ in CLIPS:
                clip = str(find_one(root, rel))
                row(clip, "live", "bona fide", subject, "no", clip)
        for task in tasks:
            row(task.out, "attack", task.kind, task.subject, "yes", task.source)
    seconds = time.monotonic() - t0
    counts = Counter(t.kind for t in tasks)
    command = (
        shlex.join([sys.executable, *sys.argv])
        if argv is None
        else shlex.join(["make_attacks.py", *argv])
    )
    (out_dir / "README.txt").write_text(
        README.format(
            seed=args.seed,
            command=command,
            when=time.strftime("%Y-%m-%d %H:%M:%S"),
            total=len(tasks),
            seconds=seconds,
            counts=", ".join(f"{k} {v}" for k, v in counts.items()),
            clips="\n  ".join(clip_notes) or "none",
        ),
        encoding="utf-8",
    )
    for warning in warnings:
        log(f"warning: {warning}")
    size = sum(done.values())
    log(
        f"wrote {len(tasks)} SIMULATED presentations ({size / 1e6:.1f} MB) and "
        f"{len(enrol) + len(clip_enrol)} enrolment rows to {out_dir} in {seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
