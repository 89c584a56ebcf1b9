"""Enrolment at the door: the daemon's controller for the button, the arming file and a capture.

:class:`DoorEnrolment` runs inside the door loop of :class:`~pi_facegate.daemon.service.DoorService`
and owns everything enrolment needs there: the enrolment button (whose gpiozero thread only
sets flags), the watcher of the administrator's arming file (one ``stat`` per frame, see
:mod:`pi_facegate.storage.arming`), the capture session running over the next frames (see
:mod:`pi_facegate.core.capture`), and the door's feedback (LED, signal patterns). The
service calls it at three points of each frame:

* :meth:`DoorEnrolment.poll` before the frame is detected: arming changes, button presses,
  cancellation, restoring the armed LED;
* :meth:`DoorEnrolment.feed` once the faces are tracked: the face being captured feeds the
  capture session instead of the access policy -- it gets no votes, so the door never opens
  for it -- and every other face is decided as usual;
* :meth:`DoorEnrolment.finish_if_due` after the decisions: a capture that is done stores the
  person in one transaction (through the service's ``store``) and says so at the door.

An enrolment problem never stops the door: it is logged, and the loop goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pi_facegate.config.schema import Config
from pi_facegate.core.capture import (
    CaptureResult,
    CaptureSession,
    CaptureSettings,
    EnrolmentRequest,
    pending_name,
    subject_index,
)
from pi_facegate.core.faces import Face
from pi_facegate.core.liveness import CaptureLiveness
from pi_facegate.daemon.enrolment_store import EnrolmentOutcome
from pi_facegate.daemon.wiring import liveness_settings
from pi_facegate.door.buttons import EnrolmentButton
from pi_facegate.door.controller import DoorController
from pi_facegate.exc import FacegateError
from pi_facegate.storage.arming import Arming, ArmingWatcher, clear_arming
from pi_facegate.vision.recognizer import FaceAnalysis

log = logging.getLogger("pi_facegate.service")  # journal name: the daemon's, as before the split

# After an enrolment signal pattern, the steady "armed" LED is restored this much later (s).
SIGNAL_PATTERN_SECONDS = 2.0


class Recorder(Protocol):
    """``record(kind, person=..., detail=...)``: the service's event log (and ``on_event``)."""

    def __call__(self, kind: str, **fields: Any) -> None: ...


#: ``analyse(image, faces, limits)``: the recognizer's analysis, with the enrolment gate.
Analyse = Callable[..., list[FaceAnalysis]]
#: ``store(request, result)``: a finished capture into the gallery (see ``enrolment_store``).
Store = Callable[[EnrolmentRequest, CaptureResult], EnrolmentOutcome]
#: ``texture(image, face)``: the texture models' live probability of a face (liveness on).
Texture = Callable[[np.ndarray, Face], float | None]


class DoorEnrolment:
    """The at-door enrolment state machine; every method is called from the door loop.

    :param config: the running config (see :meth:`reload`).
    :param arming_file: the administrator's arming file, next to the gallery.
    :param record: records an event (the service's event log and observer).
    :param analyse: analyses the faces of a frame with the given quality limits.
    :param store: stores a finished capture, returning the outcome.
    :param forget: drops one track's votes from the current access policy.
    :param on_enrolled: told of every person stored, before the door signals it.
    :param texture: with ``config.liveness.enabled``, the texture models' score of a face;
        a capture then stores someone only on a live verdict over its frames (texture and
        3-D structure, as for a grant): a photo held up at the door is never enrolled.
    """

    def __init__(
        self,
        config: Config,
        arming_file: Path,
        *,
        record: Recorder,
        analyse: Analyse,
        store: Store,
        forget: Callable[[int], None],
        on_enrolled: Callable[[EnrolmentOutcome], None] | None = None,
        texture: Texture | None = None,
    ) -> None:
        self.config = config
        self.door: DoorController | None = None
        self.button: EnrolmentButton | None = None
        self.enrolments = 0
        self._record = record
        self._analyse = analyse
        self._store = store
        self._forget = forget
        self._on_enrolled = on_enrolled
        self._texture = texture
        self._liveness: CaptureLiveness | None = None  # per capture, when liveness is on
        self._capture: CaptureSession | None = None
        self._capture_request: EnrolmentRequest | None = None
        self._capture_arming: Arming | None = None
        self._captured_tracks: set[int] = set()
        self._armed: Arming | None = None  # the arming in force at the last poll
        self._expired_tokens: set[str] = set()
        self._press = threading.Event()  # set by the button's thread, taken by the loop
        self._long_press = threading.Event()
        self._led_restore_at: float | None = None
        self.capture_settings = CaptureSettings.from_config(config)
        self.arming = ArmingWatcher(arming_file, config.enrolment.max_armed_minutes * 60.0)

    # ------------------------------------------------------------------ lifecycle
    def start(self, door: DoorController) -> None:
        """Attach to the door; set up the enrolment button on its pin factory, if configured."""
        self.door = door
        self.button = self._make_button()

    def _make_button(self) -> EnrolmentButton | None:
        """The enrolment button, on the door's pin factory (simulated with the door)."""
        e = self.config.enrolment
        if e.button_pin is None:
            return None
        return EnrolmentButton(
            e.button_pin,
            on_press=self._press.set,
            on_long_press=self._long_press.set,
            pull_up=e.button_pull_up,
            long_press_seconds=e.long_press_seconds,
            pin_factory=self.door.pin_factory,
            bounce_seconds=e.button_bounce_seconds,
        )

    def stop(self, now: float) -> None:
        """The service is stopping: a capture still running is abandoned, nothing stored."""
        if self._capture is not None:
            self._cancel_capture("the service is stopping", now, signal_door=False)

    def close(self) -> None:
        """Release the button; idempotent. A failure is logged, never raised."""
        button, self.button, self.door = self.button, None, None
        if button is None:
            return
        try:
            button.close()
        except Exception:  # noqa: BLE001 - the service goes on closing the rest
            log.exception("closing %s failed", type(button).__name__)

    def reload(self, config: Config) -> None:
        """A new config: it applies from the next capture (the button keeps its settings)."""
        self.config = config
        self.capture_settings = CaptureSettings.from_config(config)  # for the next capture
        self.arming.max_seconds = config.enrolment.max_armed_minutes * 60.0

    @property
    def capturing(self) -> bool:
        """True while a capture session runs."""
        return self._capture is not None

    def describe(self) -> str | None:
        """What enrolment is doing, for the service's status line (None: nothing)."""
        if self._capture_request is not None:
            return f"enrolling {self._capture_request.name}"
        if self._armed is not None:
            return f"enrolment armed for {self._armed.name}"
        return None

    # ------------------------------------------------------------------ between frames
    def poll(self, now: float) -> None:
        """Between two frames: arming changes, button presses, cancellation, the armed LED.

        ``now`` is monotonic seconds; the arming file is judged by the wall clock.
        """
        try:
            self._track_arming(time.time())
            if self._long_press.is_set():
                self._long_press.clear()
                if self._capture is not None:
                    self._cancel_capture("cancelled by a long press of the button", now)
                else:
                    log.info("enrolment button held, but no capture is running: nothing to abort")
            arming = self._capture_arming
            if arming is not None:
                current = self.arming.current()
                if current is None or current.token != arming.token:
                    self._cancel_capture("cancelled by the administrator", now)
            if self._press.is_set():
                self._press.clear()
                self._on_press(now)
            if self._led_restore_at is not None and now >= self._led_restore_at:
                self._led_restore_at = None
                self.door.set_enrolment_led(self._armed is not None)
        except (FacegateError, OSError) as exc:  # an enrolment problem never stops the door
            log.error("enrolment: %s", exc)

    def _track_arming(self, wall: float) -> None:
        """Log arming, expiry and disarming once each; remove an expired arming file."""
        arming = self.arming.poll(wall)
        previous, self._armed = self._armed, arming
        if arming is not None and (previous is None or previous.token != arming.token):
            until = arming.expiry(self.arming.max_seconds)
            self._record(
                "enrolment_armed",
                person=arming.name,
                detail={
                    "update": arming.update,
                    "seconds_left": round(until - wall),
                    "armed_by": arming.armed_by,
                },
            )
            self.door.set_enrolment_led(True)
        stale = self.arming.current()
        capturing_for = self._capture_arming.token if self._capture_arming is not None else None
        if arming is None and stale is not None and wall >= stale.expiry(self.arming.max_seconds):
            # a capture that started in time may finish; its arming expires afterwards
            if stale.token not in self._expired_tokens and stale.token != capturing_for:
                self._expired_tokens.add(stale.token)
                self._record("enrolment_expired", person=stale.name)
                self._remove_arming(stale.token)
        elif arming is None and previous is not None:
            self._record("enrolment_disarmed", person=previous.name)
        if arming is None and previous is not None:
            self.door.set_enrolment_led(False)

    def _remove_arming(self, token: str) -> None:
        """Delete the arming file if it still holds ``token``; a failure is only logged."""
        try:
            clear_arming(self.arming.path, token=token)
        except OSError as exc:
            log.error("could not remove the arming file %s: %s", self.arming.path, exc)

    def _on_press(self, now: float) -> None:
        """A short press: capture for the armed name, a pending person, or nobody."""
        if self._capture is not None:
            log.info("enrolment button pressed during a capture: ignored")
            return
        if self._armed is not None:
            request = EnrolmentRequest(self._armed.name, update=self._armed.update, source="door")
            self._start_capture(request, self._armed, now)
        elif self.config.enrolment.allow_pending:
            request = EnrolmentRequest(
                pending_name(), pending=True, source="door (pending approval)"
            )
            self._start_capture(request, None, now)
        else:
            self.door.signal("enrolment_failed")
            self._record("enrolment_ignored", detail={"reason": "not armed"})

    def _start_capture(self, request: EnrolmentRequest, arming: Arming | None, now: float) -> None:
        self._capture = CaptureSession(self.capture_settings, now)
        self._capture_request, self._capture_arming = request, arming
        self._captured_tracks = set()
        self._liveness = None
        if self.config.liveness.enabled:
            self._liveness = CaptureLiveness(liveness_settings(self.config), self._texture)
        self.door.signal("enrolment_start")  # "look at the camera"
        self._led_restore_at = now + SIGNAL_PATTERN_SECONDS
        self._record(
            "enrolment_started",
            person=request.name,
            detail={
                "update": request.update,
                "pending": request.pending,
                "seconds": self.capture_settings.capture_seconds,
            },
        )

    # ------------------------------------------------------------------ in a frame
    def feed(
        self, image: np.ndarray, faces: list[Face], track_ids: list[int], now: float
    ) -> set[int]:
        """Give the frame to a running capture; returns the tracks that get no votes."""
        session = self._capture
        if session is None:
            return set()
        subject = subject_index(faces)
        analysis = None
        if subject is not None:
            self._captured_tracks.add(track_ids[subject])
            self._forget(track_ids[subject])  # votes cast before the press do not count
            if len(faces) == 1:
                analysis = self._analyse(image, faces, self.capture_settings.limits)[0]
                if self._liveness is not None:
                    self._liveness.feed(image, analysis.face, analysis.mesh, now)
        session.feed(len(faces), analysis, now)
        return self._captured_tracks

    def finish_if_due(self, now: float) -> None:
        """End a capture that is done: store the person (or say why not) and signal it."""
        session, request = self._capture, self._capture_request
        if session is None or request is None or not session.due(now):
            return
        result = session.finish(now)
        refusal = self._liveness.refusal() if self._liveness is not None else None
        if result.ok and refusal is not None:
            self._conclude(EnrolmentOutcome(request, result, reason=refusal), now)
            return
        try:
            outcome = self._store(request, result)
        except Exception as exc:  # noqa: BLE001 - an enrolment bug must not stop the door
            log.exception("enrolment of %s failed", request.name)
            outcome = EnrolmentOutcome(request, result, reason=f"internal error: {exc}")
        self._conclude(outcome, now)

    def _cancel_capture(self, reason: str, now: float, signal_door: bool = True) -> None:
        session, request = self._capture, self._capture_request
        if session is None or request is None:
            return
        outcome = EnrolmentOutcome(request, session.cancel(reason, now), reason=reason)
        self._conclude(outcome, now, signal_door=signal_door)

    def _conclude(self, outcome: EnrolmentOutcome, now: float, signal_door: bool = True) -> None:
        """Signal and log the end of a capture; consume the arming if someone was stored."""
        arming = self._capture_arming
        self._capture = self._capture_request = self._capture_arming = None
        for track in self._captured_tracks:
            self._forget(track)
        self._captured_tracks = set()
        request, capture = outcome.request, outcome.capture
        detail = {**capture.detail(), "update": request.update, "pending": request.pending}
        if outcome.ok:
            self.enrolments += 1
            if arming is not None:
                self._remove_arming(arming.token)  # one arming, one person
                self._armed = None
            if self._on_enrolled is not None:
                self._on_enrolled(outcome)
            kind, pattern = "enrolled", "enrolment_ok"
        else:
            detail["reason"] = outcome.reason
            if outcome.lookalike is not None:
                detail["matches"] = outcome.lookalike
                log.warning("enrolment of %s refused: %s", request.name, outcome.reason)
            kind = "enrolment_cancelled" if capture.cancelled else "enrolment_failed"
            pattern = "enrolment_failed"
        if signal_door:
            self.door.signal(pattern)
            self._led_restore_at = now + SIGNAL_PATTERN_SECONDS
        self._record(
            kind, person=outcome.person.name if outcome.ok else request.name, detail=detail
        )
