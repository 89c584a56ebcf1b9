"""Only the newest frame of a live camera: :class:`FrameGrabber`.

The grabber reads a live source on its own thread and keeps only the newest frame, so the
recogniser never works on a stale queue. A replay source is *not* grabbed: read directly
it delivers every frame in order. :func:`~pi_facegate.camera.factory.create_camera` makes
that choice.
"""

from __future__ import annotations

import logging
import threading

from pi_facegate.camera.source import Frame, FrameSource, error_reason
from pi_facegate.exc import CameraError, CameraTimeoutError

log = logging.getLogger("pi_facegate.camera")  # journal name: stable across moves

#: seconds a :class:`FrameGrabber` waits for one frame from its source before retrying
DEFAULT_GRAB_TIMEOUT = 2.0


class FrameGrabber(FrameSource):
    """Reads a live source on a worker thread and keeps only the newest frame.

    A camera delivers frames at its own rate while recognition may take longer than one
    frame period; queuing would make the door act on what happened seconds ago. The
    grabber's thread reads continuously, overwriting the one frame it holds (counting the
    overwritten ones in :attr:`dropped`); :meth:`latest` hands out each frame at most once.

    The grabber owns ``source``: ``start``/``stop``/``close`` pass through to it. Errors
    reach the consumer: a source error ends the thread and :meth:`latest` raises it (after
    the frame still held, if any); a timeout of one read is only retried, because the
    consumer's own timeout (and :class:`~pi_facegate.camera.supervisor.SupervisedSource`'s stall limit) judge a stall.
    Not for replay: a grabbed replay drops frames whenever the consumer is slower.
    """

    kind = "grabber"

    def __init__(
        self,
        source: FrameSource,
        read_timeout: float = DEFAULT_GRAB_TIMEOUT,
        join_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self._thread: threading.Thread | None = None
        self._zombie: threading.Thread | None = None
        self.source = source
        self.read_timeout = float(read_timeout)
        #: seconds stop() waits for the thread; a read can block that long, plus slack
        self.join_timeout = self.read_timeout + 2.0 if join_timeout is None else float(join_timeout)
        self._changed = threading.Condition()
        self._halt = threading.Event()
        self._reset()

    def describe(self) -> str:
        source = getattr(self, "source", None)
        return f"grabber of {source.describe()}" if source is not None else "grabber"

    def _reset(self) -> None:
        self._latest: Frame | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._frames_read = 0
        self._dropped = 0

    @property
    def frames_read(self) -> int:
        """Frames the thread has read from the source since start."""
        return self._frames_read

    @property
    def dropped(self) -> int:
        """Frames overwritten by a newer one before any consumer took them."""
        return self._dropped

    def _open(self) -> None:
        with self._changed:
            self._reset()
        self._halt.clear()
        self.source.start()
        self._thread = threading.Thread(target=self._run, name="FrameGrabber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """The worker thread: the only reader of ``source`` while started."""
        try:
            while not self._halt.is_set():
                try:
                    frame = self.source.read(self.read_timeout)
                except CameraTimeoutError:
                    continue
                with self._changed:
                    if frame is None:
                        self._ended = True
                        self._changed.notify_all()
                        return
                    if self._latest is not None:
                        self._dropped += 1
                    self._latest = frame
                    self._frames_read += 1
                    self._changed.notify_all()
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, never lost
            if self._halt.is_set():
                return
            if not isinstance(exc, CameraError):
                log.error("%s: unexpected error", self.describe(), exc_info=True)
            with self._changed:
                self._error = exc
                self._changed.notify_all()

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not handed out yet, waiting up to ``timeout`` seconds for one.

        :returns: the frame, or ``None`` once a finite source has ended.
        :raises CameraTimeoutError: no new frame within ``timeout``.
        :raises CameraError: the source failed, or the grabber was stopped.
        """
        return self.read(timeout)

    def wait_until_read(self, count: int, timeout: float | None = None) -> bool:
        """Wait until the thread has read ``count`` frames (e.g. to let exposure settle).

        :returns: whether it had, within ``timeout``; ``False`` early if the source ended or failed.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._frames_read >= count
                    or self._ended
                    or self._error is not None
                    or self._halt.is_set()
                ),
                timeout,
            )
            return self._frames_read >= count

    def _read(self, timeout: float | None) -> Frame | None:
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._latest is not None
                    or self._ended
                    or self._error is not None
                    or self._halt.is_set()
                ),
                timeout,
            )
            if self._latest is not None:
                frame, self._latest = self._latest, None
                return frame
            if self._error is not None:  # a fresh exception each time, chained to the cause
                error = self._error
                text = str(error) if isinstance(error, CameraError) else error_reason(error)
                raise CameraError(text) from error
            if self._ended:
                return None
            if self._halt.is_set():
                raise CameraError(f"{self.describe()}: stopped")
            raise CameraTimeoutError(f"{self.source.describe()}: no frame within {timeout:g} s")

    def _release(self) -> None:
        self._halt.set()
        with self._changed:
            self._changed.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout)
            if thread.is_alive():
                # Like gpiozero's ZombieThread: closing a device a thread is inside of is worse.
                self._zombie = thread
                raise CameraError(
                    f"{self.describe()}: the reading thread did not stop within "
                    f"{self.join_timeout:g} s (camera read hung); the device is left open"
                )
        self.source.stop()

    def _close(self) -> None:
        zombie = self._zombie
        if zombie is not None and zombie.is_alive():
            log.error("%s: not closing the source, a thread is still reading it", self.describe())
            return
        self.source.close()
