"""A camera on a FIFO: MJPEG frames of Lin-Manuel Miranda into a named pipe, then silence.

``python tests/faults/fifo_camera.py CLIP FIFO SECONDS``: opens FIFO for writing (that
waits for the daemon's ``camera.type: opencv`` to open it), writes the close-up frames of the
Hamilton clip (82..210, looped) as JPEGs -- first a burst that FFmpeg's stream probe reads
at once, then 20 per second for SECONDS -- prints ``STALLED <unix time>`` and keeps the
pipe open without writing another byte, until it is killed. The daemon's read then blocks
in the kernel: a camera hung in its driver. Killing this process is unplugging the camera
(the read sees the end of the stream).
"""

from __future__ import annotations

import os
import sys
import time

import cv2

PROBE_BYTES = 6_000_000  # more than FFmpeg's default probesize (5 MB): its probe ends at once
FPS = 20


def frames(clip: str) -> list[bytes]:
    capture = cv2.VideoCapture(clip)
    out = []
    for index in range(211):
        ok, frame = capture.read()
        if not ok:
            break
        if index >= 82:
            out.append(cv2.imencode(".jpg", frame)[1].tobytes())
    capture.release()
    return out


def main(clip: str, fifo: str, seconds: float) -> None:
    jpegs = frames(clip)
    fd = os.open(fifo, os.O_WRONLY)
    written = index = 0
    while written < PROBE_BYTES:
        written += os.write(fd, jpegs[index % len(jpegs)])
        index += 1
    print("STREAMING", flush=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        os.write(fd, jpegs[index % len(jpegs)])
        index += 1
        time.sleep(1 / FPS)
    print(f"STALLED {time.time():.3f}", flush=True)
    while True:
        time.sleep(3600)  # the pipe stays open and silent


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
