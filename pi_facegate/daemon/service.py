"""The door daemon: camera → recognition → access policy → relay, as a systemd service.

:class:`DoorService` owns every long-lived part and runs the frame loop, after the shape of
piwheels' master: start the parts in a fixed order (event log, door, models, gallery,
camera), tell systemd READY only when all are up, ping the watchdog from the loop, and on
the way out lock the door *first*, then close the parts in reverse order. SIGTERM ends the
loop after the current frame; SIGHUP re-reads the config file and keeps the last good one
if the new one is invalid. Every error path leaves the relay in its locked state: the door
controller starts locked, a grant is the only thing that pulses it, and ``close()`` locks.

Enrolment at the door runs inside the same loop (see :mod:`pi_facegate.daemon.door_enrolment`
and :mod:`pi_facegate.core.capture`): the loop polls the administrator's arming file (one
``stat`` per frame) and the enrolment button's flags (set by gpiozero's thread), runs a
capture session over the next frames -- the face being captured gets no votes from the
access policy meanwhile, every other face is decided as usual -- and stores the person in
one transaction when the session ends. :class:`~pi_facegate.daemon.door_enrolment.DoorEnrolment`
owns that state; the service only calls it from the loop, at close and on reload. Likewise
:class:`~pi_facegate.daemon.access_guard.AccessGuard` owns the wall clock schedules are read
in, the attempt limits and the one alarm path (too many refused faces, a door forced or
held open).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate.camera.factory import create_camera, create_source
from pi_facegate.camera.source import FrameSource
from pi_facegate.config.loader import load_config
from pi_facegate.config.schema import Config
from pi_facegate.core.capture import CaptureResult, EnrolmentRequest
from pi_facegate.core.liveness import LivenessJudge, LivenessResult
from pi_facegate.core.matcher import GalleryIndex
from pi_facegate.core.policy import Decision, Verdict
from pi_facegate.core.tracker import FaceTracker
from pi_facegate.daemon import wiring as components
from pi_facegate.daemon.access_guard import AccessGuard
from pi_facegate.daemon.door_enrolment import DoorEnrolment
from pi_facegate.daemon.enrolment_store import EnrolmentOutcome, complete
from pi_facegate.daemon.mqtt_link import MqttLink, start_link
from pi_facegate.daemon.notify import Notifier
from pi_facegate.daemon.status_file import StatusWriter, service_state, status_path
from pi_facegate.door.controller import DoorController
from pi_facegate.exc import CameraError, ConfigError, FacegateError
from pi_facegate.storage.arming import arming_path
from pi_facegate.storage.events import EventWriter
from pi_facegate.storage.gallery import Gallery
from pi_facegate.storage.gallery_file import check_gallery_file
from pi_facegate.vision.antispoof import TextureLiveness
from pi_facegate.vision.recognizer import FaceAnalysis, Recognizer

log = logging.getLogger("pi_facegate.service")  # journal name: stable across moves

GALLERY_POLL_SECONDS = 0.5  # how often the loop asks SQLite whether the gallery changed
READ_TIMEOUT_SECONDS = 1.0  # a read never blocks longer, so signals and the watchdog are served
#: denials that end a face's chances for the rest of its track
FINAL_DENIALS = frozenset({Verdict.DENY_ATTACK, Verdict.DENY_NO_LIVENESS})
# Settings the running daemon cannot change without reopening hardware or models.
RESTART_SECTIONS = ("camera", "detector", "embedder", "storage", "mqtt")
RESTART_DOOR_KEYS = ("simulate", "relay", "contact", "exit_button", "leds", "buzzer")
RESTART_ENROLMENT_KEYS = ("button_pin", "button_pull_up", "long_press_seconds")

#: ``on_event(kind, fields)``: every event the service records, as recorded (tests, tools).
EventObserver = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class RunOptions:
    """What ``facegate run`` was asked on its command line."""

    config_path: Path
    state_dir: Path
    replay: Path | None = None
    replay_fps: float | None = None
    simulate_gpio: bool = False
    gallery_path: Path | None = None
    events_path: Path | None = None


class DoorService:
    """The running appliance. ``run()`` returns the process exit status.

    ``on_event(kind, fields)`` (optional) sees every event right after it is recorded, on
    the thread that recorded it; it must be quick. ``ready_event`` is set when READY is
    sent (everything started). ``wall_clock`` (seconds since the epoch) is the time access
    rules are read in (:mod:`pi_facegate.daemon.access_guard`).
    """

    def __init__(
        self,
        options: RunOptions,
        config: Config,
        notifier: Notifier | None = None,
        on_event: EventObserver | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        # everything close() relies on exists before anything can raise
        self.options = options
        self.config = config
        self.notifier = notifier or Notifier()
        self.on_event = on_event
        self.stop_event = threading.Event()
        self.ready_event = threading.Event()
        self._reload_requested = threading.Event()
        self.events: EventWriter | None = None
        self.door: DoorController | None = None
        self.recognizer: Recognizer | None = None
        self.gallery: Gallery | None = None
        self.camera: FrameSource | None = None
        self.mqtt = MqttLink()  # does nothing until start(); see pi_facegate.daemon.mqtt_link
        self.policy = components.make_policy(config)
        self.guard = AccessGuard(config, self._record, self._signal, wall_clock)
        self.tracker = FaceTracker()
        self.liveness = LivenessJudge(components.liveness_settings(config))
        self.texture: TextureLiveness | None = None
        self.threshold = 0.0
        self.rule = None  # chooses the threshold for the gallery's size: wiring.match_rule
        self.min_margin = 0.0
        self.index: GalleryIndex | None = None
        self._next_gallery_poll = 0.0
        self._last_video_ts = -1
        self._last_frame_at: float | None = None
        self._frame_times: deque[float] = deque(maxlen=60)
        self._last_decision = "none yet"
        self._next_status = 0.0
        self.frames = 0
        self.grants = 0
        self.status_file = StatusWriter(status_path(self.data_paths()[0].parent))
        # the recognizer and the policy are looked up per call: start() and reload() set them
        self.enrolment = DoorEnrolment(
            config,
            arming_path(self.data_paths()[0].parent),
            record=self._record,
            analyse=lambda image, faces, limits: self.recognizer.analyse(image, faces, limits),
            store=self._store_capture,
            forget=lambda track: self.policy.forget(track),
            on_enrolled=self._on_enrolled,
            texture=self._texture_score,
        )

    # ------------------------------------------------------------------ lifecycle
    def request_stop(self, *_: Any) -> None:
        """SIGTERM/SIGINT: finish the current frame, lock, exit 0."""
        self.stop_event.set()

    def request_reload(self, *_: Any) -> None:
        """SIGHUP (``systemctl reload``): re-read the config between two frames."""
        self._reload_requested.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def data_paths(self) -> tuple[Path, Path]:
        """``(gallery, events)`` files: the command line's, else the config's in the state dir.

        The enrolment arming file lives next to the gallery it enrols into, so the CLI
        (which resolves the gallery the same way) and the daemon always agree on it.
        """
        gallery_path, events_path = self.config.resolve_paths(self.options.state_dir)
        return (
            self.options.gallery_path or gallery_path,
            self.options.events_path or events_path,
        )

    def start(self) -> None:
        """Bring the parts up in order; READY is sent by ``run`` once this returns."""
        cfg, opts = self.config, self.options
        gallery_path, events_path = self.data_paths()
        # a gallery that could have been planted, or that is lost, stops the daemon before
        # any model loads: the door stays locked and the error says which file and why
        check_gallery_file(gallery_path, create=True)
        for path in (gallery_path, events_path):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.events = EventWriter(events_path, max_events=cfg.storage.max_events)
        self.door = components.make_door(cfg, opts.simulate_gpio, self._door_event)
        self.mqtt = start_link(cfg, events_path, self.door)  # publishes from the event log
        self.enrolment.start(self.door)
        embedder = components.build_embedder(cfg)
        self.recognizer = components.build_recognizer(cfg, video=True, embedder=embedder)
        self.texture = components.build_texture_liveness(cfg)
        self.rule, self.min_margin = components.match_rule(cfg, embedder.manifest)
        self.gallery = components.open_gallery(gallery_path, embedder)
        self.index = self.gallery.index()
        self.threshold = components.gallery_threshold(self.rule, self.index, None)
        self.policy.rules = self.guard.rules_for(self.index)
        self._warn_if_nobody_enrolled()
        self.camera = self._make_camera()
        self.camera.start()
        self._record(
            "started",
            detail={
                "people": len(self.index.names),
                "detector": self.recognizer.detector.backend,
                "camera": self.camera.describe(),
                "simulated_gpio": bool(opts.simulate_gpio or cfg.door.simulate),
            },
        )
        log.info(
            "started: %d people, detector %s, camera %s",
            len(self.index.names),
            self.recognizer.detector.backend,
            self.camera.describe(),
        )

    def _warn_if_nobody_enrolled(self) -> None:
        """An empty gallery lets nobody in: say so at start, louder if it once had people."""
        if self.index.names:
            return
        if self.gallery.emptied():
            log.warning(
                "the gallery %s holds nobody, but people were enrolled in it (created %s): "
                "it was emptied; nobody is let in. Restore it from a backup if that was not "
                "intended",
                self.gallery.path,
                self.gallery.created,
            )
        else:
            log.warning(
                "the gallery %s is empty: nobody is let in until someone is enrolled "
                "(facegate enroll NAME PHOTO...)",
                self.gallery.path,
            )

    def _make_camera(self) -> FrameSource:
        cam, opts = self.config.camera, self.options
        if opts.replay is not None:
            fps = opts.replay_fps if opts.replay_fps is not None else cam.replay.fps
            return create_source(
                cam, type="replay", replay_path=opts.replay, replay_fps=fps, replay_loop=False
            )
        return create_camera(cam, on_event=self._camera_event, stop_event=self.stop_event)

    def close(self) -> None:
        """Lock first, then close everything in reverse order of start; idempotent.

        A capture still running is abandoned: nothing of it is stored.
        """
        if self.door is not None:
            try:
                self.door.lock()
            except Exception:  # noqa: BLE001 - close() below locks again
                log.exception("locking the door failed")
        self.enrolment.stop(time.monotonic())
        parts = (
            self.camera,
            self.gallery,
            self.texture,
            self.recognizer,
            self.enrolment,
            self.door,
        )
        for part in parts:
            if part is None:
                continue
            try:
                part.close()
            except Exception:  # noqa: BLE001 - keep closing the rest
                log.exception("closing %s failed", type(part).__name__)
        if self.events is not None:
            self._record("stopped", detail={"frames": self.frames, "grants": self.grants})
            self.events.close()
        self.mqtt.close()  # after the log is flushed: "stopped" is published, then offline
        self.status_file.close(service_state(self))
        self.camera = self.gallery = self.recognizer = self.door = self.events = None
        self.texture = None

    def run(self) -> int:
        """Start, loop until stopped (or the replay ends), close. Returns the exit status."""
        try:
            self.start()
            self.notifier.ready()
            self.ready_event.set()
            return self._loop()
        except FacegateError as exc:  # why it stopped, in the log too (a corrupt gallery...)
            self._record("fatal_error", detail={"error": str(exc), "type": type(exc).__name__})
            raise
        finally:
            self.notifier.stopping()
            self.close()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> int:
        """Serve frames until stopped; the exit status (0, or 1 after a camera outage)."""
        watchdog = self.notifier.watchdog_period()
        status = 0
        started = time.monotonic()
        while not self.stop_event.is_set():
            self.mqtt.serve(self.door, self._record)  # a remote unlock waiting: one pulse
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
            try:
                frame = self.camera.read(timeout=READ_TIMEOUT_SECONDS)
            except CameraError as exc:
                if self.stop_event.is_set():
                    break
                log.debug("no frame: %s", exc)
                # without frames, arming changes and a capture's deadline are still served
                now = time.monotonic()
                self.enrolment.poll(now)
                self.enrolment.finish_if_due(now)
                if self._camera_out_too_long(started):
                    status = 1
                    break
                self._service_ping(camera_ok=False)
                continue
            if frame is None:
                log.info("replay finished after %d frames", self.frames)
                break
            self.process(frame.image, frame.timestamp, frame.lores)
            self._service_ping(camera_ok=True)
        if watchdog:
            log.debug("watchdog period was %.1f s", watchdog)
        return status

    def _texture_score(self, image: np.ndarray, face) -> float | None:
        """The texture models' live probability; ``None`` (no evidence: never live) when
        they are not loaded."""
        return None if self.texture is None else self.texture.score(image, face)

    def _load_texture(self, config: Config) -> None:
        """Liveness switched on by a reload: load its models now. If they cannot be loaded
        the policy still demands a live verdict, which then never comes: the door stays
        locked for everyone and the journal says why."""
        try:
            self.texture = components.build_texture_liveness(config)
        except FacegateError as exc:
            log.error("liveness is on but its models cannot be loaded; nobody is let in: %s", exc)

    def _camera_out_too_long(self, started: float) -> bool:
        """True once no frame came for ``service.max_camera_outage_seconds``: then the loop
        ends with an error (the door locked by ``close()``) so that systemd restarts the
        service; a supervisor retrying for ever never frees a camera hung in its driver."""
        since = self._last_frame_at if self._last_frame_at is not None else started
        outage = time.monotonic() - since
        limit = self.config.service.max_camera_outage_seconds
        if outage <= limit:
            return False
        log.error(
            "no frame from the camera for %.0f s (limit service.max_camera_outage_seconds = "
            "%g s): exiting so that systemd restarts the service",
            outage,
            limit,
        )
        self._record("camera_error", detail={"error": "outage", "seconds": round(outage, 1)})
        return True

    def _service_ping(self, camera_ok: bool) -> None:
        """Ping the watchdog while the loop is healthy; report status now and then.

        The loop pings only when a frame went through the pipeline recently, or when the
        camera supervisor is visibly retrying a failed camera: a read that hangs in the
        driver stops the pings, and systemd restarts the service.
        """
        now = time.monotonic()
        fresh = (
            self._last_frame_at is not None
            and now - self._last_frame_at <= self.config.service.watchdog_frame_age_seconds
        )
        retrying = not camera_ok and getattr(self.camera, "state", "ok") != "ok"
        if fresh or retrying:
            self.notifier.watchdog_ping()
        if now >= self._next_status:
            self._next_status = now + self.config.service.status_interval_seconds
            self.notifier.status(self.status_text(camera_ok))
            state = service_state(self, camera_ok)
            self.status_file.write(state)  # for facegate status
            self.mqtt.status(state, self.status_file.last_decision)

    def fps(self) -> float:
        """Frames per second over the last 60 frames."""
        times = self._frame_times
        if len(times) > 1 and times[-1] > times[0]:
            return (len(times) - 1) / (times[-1] - times[0])
        return 0.0

    def status_text(self, camera_ok: bool = True) -> str:
        fps = self.fps()
        camera = "ok" if camera_ok else f"camera {getattr(self.camera, 'state', 'failed')}"
        text = f"{fps:.1f} fps, {camera}, last decision: {self._last_decision}"
        enrolment = self.enrolment.describe()
        if enrolment is not None:
            text += f", {enrolment}"
        trouble = self.events.trouble if self.events is not None else None
        if trouble is not None:  # e.g. a full disk: events wait in memory, the door runs
            text += f", {trouble}"
        return text

    def _refresh_gallery(self, now: float) -> None:
        if now < self._next_gallery_poll:
            return
        self._next_gallery_poll = now + GALLERY_POLL_SECONDS
        if self.gallery.refresh_if_changed():
            self.index = self.gallery.index()
            self.threshold = components.gallery_threshold(self.rule, self.index, self.threshold)
            self.policy.rules = self.guard.rules_for(self.index)  # a `people set` lands here
            self.policy.reset()
            self.tracker.reset()
            self.liveness.reset()
            self._record("gallery_changed", detail={"people": len(self.index.names)})

    def process(
        self, image: np.ndarray, captured: float, lores: np.ndarray | None = None
    ) -> list[Decision]:
        """One frame through the pipeline and the policy; pulses the relay on a grant.

        While an enrolment capture runs, the face being captured feeds the capture session
        instead of the policy: it gets no votes, so the door never opens for it.
        """
        now = time.monotonic()
        self._refresh_gallery(now)
        self.enrolment.poll(now)
        rec = self.recognizer
        ts = max(self._last_video_ts + 1, int(captured * 1000))
        self._last_video_ts = ts
        faces = rec.detect(image, timestamp_ms=ts, lores=lores)
        track_ids = self.tracker.update([f.box for f in faces], captured)
        for gone in self.tracker.dropped:
            self.policy.forget(gone)
            self.liveness.forget(gone)
        excluded = self.enrolment.feed(image, faces, track_ids, now)
        # a face already granted is not embedded again while its person is in cooldown
        todo = [
            (f, t)
            for f, t in zip(faces, track_ids, strict=True)
            if t not in excluded and not self.tracker.get(t).is_decided(captured)
        ]
        analyses = rec.analyse(image, [f for f, _ in todo])
        if len(self.index.names):
            rec.match(analyses, self.index, self.threshold, self.min_margin)
        decisions = []
        local = self.guard.local_now()  # schedules and valid dates are read in this
        for analysis, (_, track) in zip(analyses, todo, strict=True):
            if not analysis.usable:
                continue  # a blurred or turned face casts no vote either way
            if self.guard.holds_back(analysis.match, captured, self.policy.rules, local):
                continue  # slowdown after an alarm: strangers are not decided
            liveness = self._judge_liveness(image, analysis, track, captured)
            decision = self.policy.observe(track, analysis.match, captured, liveness, local)
            decisions.append(decision)
            self._act(decision, captured)
        self.enrolment.finish_if_due(time.monotonic())
        self.frames += 1
        self._frame_times.append(now)
        self._last_frame_at = time.monotonic()
        return decisions

    def _judge_liveness(
        self, image: np.ndarray, analysis: FaceAnalysis, track: int, captured: float
    ) -> LivenessResult | None:
        """This frame's liveness evidence of a recognised face, and the track's verdict.

        Only faces the matcher identified are judged (a stranger is denied anyway): the
        texture models run while their verdict can still change, the planarity cue reads
        the mesh the aligner already computed.
        """
        match = analysis.match
        if not self.policy.require_liveness or match is None:
            return None
        if not getattr(match, "recognised", match.accepted):
            return None
        result = self.liveness.judge(
            track, captured, lambda: self._texture_score(image, analysis.face), analysis.mesh
        )
        if result.prompt:  # a still face: ask for a turn of the head (a request, not evidence)
            self.door.signal("move_prompt")
            self._record("liveness_prompt", person=match.name, detail=result.cues())
        return result

    def _act(self, decision: Decision, captured: float) -> None:
        fields = decision.event_fields()
        if decision.granted:
            latency_ms = (time.monotonic() - captured) * 1e3
            self.door.unlock("face", person=decision.name)
            self.door.signal("granted")
            self.grants += 1
            self.tracker.mark_decided(
                decision.track_id, captured + self.config.access.cooldown_seconds
            )
            fields["detail"]["latency_ms"] = round(latency_ms, 1)
            self._record(**fields)
            self._last_decision = f"granted {decision.name}"
        elif decision.verdict in FINAL_DENIALS:
            # an attack, or no live verdict in time: this face stays denied for its life
            self.tracker.mark_decided(decision.track_id, math.inf)
            if self.policy.should_log(decision, captured):
                self.door.signal("denied")
                self._record(**fields)
                self._last_decision = f"denied ({fields['detail'].get('reason')})"
        elif fields is not None and self.policy.should_log(decision, captured):
            self.door.signal("denied")
            self._record(**fields)
            self._last_decision = f"denied ({fields['detail'].get('reason')})"
        self.guard.judged(decision, captured)  # K refused faces within T: one alarm

    # ------------------------------------------------------------------ enrolment hooks
    def _store_capture(self, request: EnrolmentRequest, result: CaptureResult) -> EnrolmentOutcome:
        """Store a finished door capture, checked against the gallery as it is now."""
        return complete(
            self.gallery, self.gallery.index(), request, result, self.threshold, self.min_margin
        )

    def _on_enrolled(self, outcome: EnrolmentOutcome) -> None:
        self._next_gallery_poll = 0.0  # recognise the new person from the next frame
        self._last_decision = f"enrolled {outcome.person.name}"

    # ------------------------------------------------------------------ events and reload
    def _record(self, kind: str, **fields: Any) -> None:
        """Record an event in the log (and the journal), then show it to ``on_event``."""
        if self.events is not None:
            self.events.record(kind, **fields)
        self.status_file.note(kind, fields)
        self.mqtt.recorded(kind, fields)
        if self.on_event is not None:
            try:
                self.on_event(kind, fields)
            except Exception:  # noqa: BLE001 - an observer never stops the door
                log.exception("on_event observer failed for %r", kind)

    def _door_event(self, kind: str, details: dict) -> None:
        if self.events is not None:
            person = details.pop("person", None) if isinstance(details, dict) else None
            self._record(kind, person=person, detail=details)
            self.guard.door_event(kind, details)  # forced or held open: an alarm as well

    def _signal(self, kind: str) -> None:
        if self.door is not None:
            self.door.signal(kind)

    def _camera_event(self, kind: str, details: dict) -> None:
        if self.events is not None:
            self._record(kind, detail=details)

    def reload(self) -> bool:
        """Re-read the config file; apply it if valid, else keep the running config."""
        self.notifier.reloading()
        try:
            new = load_config(self.options.config_path)
            # bounds that depend on the running embedder are judged before anything applies
            match = components.match_rule(new, self.recognizer.embedder.manifest)
        except ConfigError as exc:
            log.error("config reload rejected; keeping the running config: %s", exc)
            self._record(
                "config_rejected", detail={"path": str(self.options.config_path), "error": str(exc)}
            )
            self.notifier.ready()
            return False
        needs_restart = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(self.config, s)]
        needs_restart += [
            f"door.{k}"
            for k in RESTART_DOOR_KEYS
            if getattr(new.door, k) != getattr(self.config.door, k)
        ]
        needs_restart += [
            f"enrolment.{k}"
            for k in RESTART_ENROLMENT_KEYS
            if getattr(new.enrolment, k) != getattr(self.config.enrolment, k)
        ]
        self.config = new
        self.enrolment.reload(new)  # applies from the next capture
        # the new policy takes over cooldowns and votes, the tracker and the liveness evidence
        # stay: a person at the door during a reload is not let in (or judged) twice
        policy = components.make_policy(new)
        policy.carry_over(self.policy)
        self.guard.reload(new)  # keeps the attempt count and a slowdown
        policy.rules = self.guard.rules_for(self.index)
        self.policy = policy
        self.liveness.settings = components.liveness_settings(new)  # for tracks from now on
        if new.liveness.enabled and self.texture is None:
            self._load_texture(new)
        self.recognizer.limits = components.quality_limits(new)
        self.rule, self.min_margin = match
        self.threshold = components.gallery_threshold(self.rule, self.index, self.threshold)
        if needs_restart:
            log.warning(
                "config applied; these changes take effect only after a restart: %s",
                ", ".join(needs_restart),
            )
        self._record(
            "config_reloaded",
            detail={"path": str(self.options.config_path), "restart_needed_for": needs_restart},
        )
        self.notifier.ready()
        return True
