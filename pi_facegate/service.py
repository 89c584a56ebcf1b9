"""The door daemon: camera → recognition → access policy → relay, as a systemd service.

:class:`DoorService` owns every long-lived part and runs the frame loop, after the shape of
piwheels' master: start the parts in a fixed order (event log, door, models, gallery,
camera), tell systemd READY only when all are up, ping the watchdog from the loop, and on
the way out lock the door *first*, then close the parts in reverse order. SIGTERM ends the
loop after the current frame; SIGHUP re-reads the config file and keeps the last good one
if the new one is invalid. Every error path leaves the relay in its locked state: the door
controller starts locked, a grant is the only thing that pulses it, and ``close()`` locks.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pi_facegate import components
from pi_facegate.camera import FrameGrabber, FrameSource, SupervisedSource, create_source
from pi_facegate.config import Config, load_config
from pi_facegate.door import DoorController, make_pin_factory
from pi_facegate.events import EventWriter
from pi_facegate.exc import CameraError, ConfigError
from pi_facegate.gallery import Gallery
from pi_facegate.matcher import GalleryIndex
from pi_facegate.notify import Notifier
from pi_facegate.pipeline import Recognizer
from pi_facegate.policy import AccessPolicy, Decision
from pi_facegate.tracker import FaceTracker

log = logging.getLogger(__name__)

GALLERY_POLL_SECONDS = 0.5  # how often the loop asks SQLite whether the gallery changed
READ_TIMEOUT_SECONDS = 1.0  # a read never blocks longer, so signals and the watchdog are served
# Settings the running daemon cannot change without reopening hardware or models.
RESTART_SECTIONS = ("camera", "detector", "embedder", "storage")
RESTART_DOOR_KEYS = ("simulate", "relay", "contact", "exit_button", "leds", "buzzer")


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


def make_policy(config: Config) -> AccessPolicy:
    a = config.access
    return AccessPolicy(
        votes_required=a.votes_required,
        window_frames=a.window_frames,
        window_seconds=a.window_seconds,
        cooldown_seconds=a.cooldown_seconds,
        unknown_log_interval_seconds=a.unknown_log_interval_seconds,
    )


def make_door(config: Config, simulate: bool, on_event) -> DoorController:
    d = config.door
    return DoorController(
        relay_pin=d.relay.pin,
        active_high=d.relay.active_high,
        lock_type=d.relay.lock_type,
        unlock_seconds=d.relay.unlock_seconds,
        contact_pin=d.contact.pin,
        contact_closed_when=d.contact.closed_when,
        held_open_seconds=d.contact.held_open_seconds,
        exit_button_pin=d.exit_button.pin,
        exit_button_pull_up=d.exit_button.pull_up,
        led_granted=d.leds.granted,
        led_denied=d.leds.denied,
        led_enrolment=d.leds.enrolment,
        buzzer_pin=d.buzzer.pin,
        pin_factory=make_pin_factory(simulate or d.simulate),
        on_event=on_event,
    )


class DoorService:
    """The running appliance. ``run()`` returns the process exit status."""

    def __init__(self, options: RunOptions, config: Config, notifier: Notifier | None = None) -> None:
        # everything close() relies on exists before anything can raise
        self.options = options
        self.config = config
        self.notifier = notifier or Notifier()
        self.stop_event = threading.Event()
        self._reload_requested = threading.Event()
        self.events: EventWriter | None = None
        self.door: DoorController | None = None
        self.recognizer: Recognizer | None = None
        self.gallery: Gallery | None = None
        self.camera: FrameSource | None = None
        self.policy = make_policy(config)
        self.tracker = FaceTracker()
        self.threshold = 0.0
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

    def start(self) -> None:
        """Bring the parts up in order; READY is sent by ``run`` once this returns."""
        cfg, opts = self.config, self.options
        gallery_path, events_path = cfg.resolve_paths(opts.state_dir)
        gallery_path = opts.gallery_path or gallery_path
        events_path = opts.events_path or events_path
        for path in (gallery_path, events_path):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.events = EventWriter(events_path, max_events=cfg.storage.max_events)
        self.door = make_door(cfg, opts.simulate_gpio, self._door_event)
        embedder = components.build_embedder(cfg)
        self.recognizer = components.build_recognizer(cfg, video=True, embedder=embedder)
        self.threshold, self.min_margin = components.match_settings(cfg, embedder)
        self.gallery = components.open_gallery(gallery_path, embedder)
        self.index = self.gallery.index()
        self.camera = self._make_camera()
        self.camera.start()
        self.events.record(
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

    def _make_camera(self) -> FrameSource:
        cam, opts = self.config.camera, self.options
        if opts.replay is not None:
            fps = opts.replay_fps if opts.replay_fps is not None else cam.replay.fps
            return create_source(cam, type="replay", replay_path=opts.replay, replay_fps=fps, replay_loop=False)
        if cam.type == "replay":
            return create_source(cam)
        return SupervisedSource(
            lambda: FrameGrabber(create_source(cam)),
            retry_initial=cam.retry_initial_seconds,
            retry_max=cam.retry_max_seconds,
            on_event=self._camera_event,
            stop_event=self.stop_event,
        )

    def close(self) -> None:
        """Lock first, then close everything in reverse order of start; idempotent."""
        if self.door is not None:
            try:
                self.door.lock()
            except Exception:  # noqa: BLE001 - close() below locks again
                log.exception("locking the door failed")
        for part in (self.camera, self.gallery, self.recognizer, self.door):
            if part is None:
                continue
            try:
                part.close()
            except Exception:  # noqa: BLE001 - keep closing the rest
                log.exception("closing %s failed", type(part).__name__)
        if self.events is not None:
            self.events.record("stopped", detail={"frames": self.frames, "grants": self.grants})
            self.events.close()
        self.camera = self.gallery = self.recognizer = self.door = self.events = None

    def run(self) -> int:
        """Start, loop until stopped (or the replay ends), close. Returns the exit status."""
        try:
            self.start()
            self.notifier.ready()
            self._loop()
            return 0
        finally:
            self.notifier.stopping()
            self.close()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        watchdog = self.notifier.watchdog_period()
        while not self.stop_event.is_set():
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
            try:
                frame = self.camera.read(timeout=READ_TIMEOUT_SECONDS)
            except CameraError as exc:
                if self.stop_event.is_set():
                    break
                log.debug("no frame: %s", exc)
                self._service_ping(camera_ok=False)
                continue
            if frame is None:
                log.info("replay finished after %d frames", self.frames)
                break
            self.process(frame.image, frame.timestamp, frame.lores)
            self._service_ping(camera_ok=True)
        if watchdog:
            log.debug("watchdog period was %.1f s", watchdog)

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

    def status_text(self, camera_ok: bool = True) -> str:
        times = self._frame_times
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        camera = "ok" if camera_ok else f"camera {getattr(self.camera, 'state', 'failed')}"
        return f"{fps:.1f} fps, {camera}, last decision: {self._last_decision}"

    def _refresh_gallery(self, now: float) -> None:
        if now < self._next_gallery_poll:
            return
        self._next_gallery_poll = now + GALLERY_POLL_SECONDS
        if self.gallery.refresh_if_changed():
            self.index = self.gallery.index()
            self.policy.reset()
            self.tracker.reset()
            log.info("gallery changed: %d people", len(self.index.names))

    def process(self, image: np.ndarray, captured: float, lores: np.ndarray | None = None) -> list[Decision]:
        """One frame through the pipeline and the policy; pulses the relay on a grant."""
        now = time.monotonic()
        self._refresh_gallery(now)
        rec = self.recognizer
        ts = max(self._last_video_ts + 1, int(captured * 1000))
        self._last_video_ts = ts
        faces = rec.detect(image, timestamp_ms=ts, lores=lores)
        track_ids = self.tracker.update([f.box for f in faces], captured)
        for gone in self.tracker.dropped:
            self.policy.forget(gone)
        # a face already granted is not embedded again while its person is in cooldown
        todo = [(f, t) for f, t in zip(faces, track_ids, strict=True) if not self.tracker.get(t).is_decided(captured)]
        analyses = rec.analyse(image, [f for f, _ in todo])
        if len(self.index.names):
            rec.match(analyses, self.index, self.threshold, self.min_margin)
        decisions = []
        for analysis, (_, track) in zip(analyses, todo, strict=True):
            if not analysis.usable:
                continue  # a blurred or turned face casts no vote either way
            decision = self.policy.observe(track, analysis.match, captured)
            decisions.append(decision)
            self._act(decision, captured)
        self.frames += 1
        self._frame_times.append(now)
        self._last_frame_at = time.monotonic()
        return decisions

    def _act(self, decision: Decision, captured: float) -> None:
        fields = decision.event_fields()
        if decision.granted:
            latency_ms = (time.monotonic() - captured) * 1e3
            self.door.unlock("face", person=decision.name)
            self.door.signal("granted")
            self.grants += 1
            self.tracker.mark_decided(decision.track_id, captured + self.config.access.cooldown_seconds)
            fields["detail"]["latency_ms"] = round(latency_ms, 1)
            self.events.record(**fields)
            self._last_decision = f"granted {decision.name}"
        elif fields is not None and self.policy.should_log(decision, captured):
            self.door.signal("denied")
            self.events.record(**fields)
            self._last_decision = f"denied ({fields['detail'].get('reason')})"

    # ------------------------------------------------------------------ events and reload
    def _door_event(self, kind: str, details: dict) -> None:
        if self.events is not None:
            person = details.pop("person", None) if isinstance(details, dict) else None
            self.events.record(kind, person=person, detail=details)

    def _camera_event(self, kind: str, details: dict) -> None:
        if self.events is not None:
            self.events.record(kind, detail=details)

    def reload(self) -> bool:
        """Re-read the config file; apply it if valid, else keep the running config."""
        self.notifier.reloading()
        try:
            new = load_config(self.options.config_path)
        except ConfigError as exc:
            log.error("config reload rejected; keeping the running config: %s", exc)
            self.events.record("config_rejected", detail={"path": str(self.options.config_path), "error": str(exc)})
            self.notifier.ready()
            return False
        needs_restart = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(self.config, s)]
        needs_restart += [f"door.{k}" for k in RESTART_DOOR_KEYS if getattr(new.door, k) != getattr(self.config.door, k)]
        self.config = new
        self.policy = make_policy(new)
        self.tracker.reset()
        self.recognizer.limits = components.quality_limits(new)
        embedder = self.recognizer.embedder
        self.threshold, self.min_margin = components.match_settings(new, embedder)
        if needs_restart:
            log.warning("config applied; these changes take effect only after a restart: %s", ", ".join(needs_restart))
        self.events.record(
            "config_reloaded",
            detail={"path": str(self.options.config_path), "restart_needed_for": needs_restart},
        )
        self.notifier.ready()
        return True
