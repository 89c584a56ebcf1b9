"""DoorController on gpiozero's MockFactory: the relay, contact, exit button and signals.

The pins are gpiozero's own ``MockPin`` (it records every level change with a timestamp), in a
subclass that also lets a test wait for a change instead of sleeping. Expected pin levels are
written out per lock type and polarity, as the wiring table in the docs would give them.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.devices import Device
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory, MockPin

from pi_facegate.door.controller import DoorController
from pi_facegate.door.pins import make_pin_factory
from pi_facegate.exc import DoorError

RELAY, CONTACT, EXIT, LED_OK, LED_NO, LED_ENROL, BUZZER = 17, 22, 27, 5, 6, 13, 19
PULSE = 0.2  # seconds: short, so the suite stays fast
SLACK = 0.25  # seconds a relock may come late on a busy 2-core machine

# (lock_type, active_high) -> (pin level when locked, pin level when unlocked)
WIRING = {
    ("fail_secure", True): (False, True),  # strike: energised (high) only to open
    ("fail_secure", False): (True, False),  # same, active-low relay board
    ("fail_safe", True): (True, False),  # maglock: energised (high) holds it locked
    ("fail_safe", False): (False, True),  # same, active-low relay board
}
WIRINGS = pytest.mark.parametrize(
    ("lock_type", "active_high"),
    list(WIRING),
    ids=[f"{t}-{'hi' if h else 'lo'}" for t, h in WIRING],
)


class EventPin(MockPin):
    """gpiozero's MockPin, plus a condition a test can wait on for the next level change."""

    def __init__(self, factory: Any, info: Any) -> None:
        self.changed = threading.Condition()
        super().__init__(factory, info)

    def _change_state(self, value: bool) -> bool:
        with self.changed:
            result = super()._change_state(value)
            self.changed.notify_all()
        return result

    def wait_for_states(self, count: int, timeout: float = 5.0) -> None:
        with self.changed:
            ok = self.changed.wait_for(lambda: len(self.states) >= count, timeout)
        assert ok, f"pin {self.info.name} has {self.states}, expected {count} states"


class Recorder:
    """An ``on_event`` callback that records events and lets the test wait for one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], float]] = []
        self._cond = threading.Condition()

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        with self._cond:
            self.events.append((name, data, time.monotonic()))
            self._cond.notify_all()

    def names(self) -> list[str]:
        with self._cond:
            return [name for name, _, _ in self.events]

    def of(self, name: str) -> list[tuple[dict[str, Any], float]]:
        with self._cond:
            return [(data, t) for n, data, t in self.events if n == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.of(name)) >= count, timeout)
        assert ok, f"no {count}x {name!r} within {timeout} s; events: {self.names()}"
        return self.of(name)[count - 1][0]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory(pin_class=EventPin)
    yield factory
    factory.reset()


@pytest.fixture
def events() -> Recorder:
    return Recorder()


def levels(pin: MockPin) -> list[bool]:
    return [bool(s.state) for s in pin.states]


def door_timer_alive(relay: int) -> bool:
    return any(t.name == f"DoorTimer-{relay}" and t.is_alive() for t in threading.enumerate())


# -- relay ----------------------------------------------------------------------------------


@WIRINGS
@pytest.mark.parametrize("before", ["at_locked_level", "at_unlocked_level"])
def test_starts_locked_without_a_glitch(factory, lock_type, active_high, before):
    locked, unlocked = WIRING[lock_type, active_high]
    pin = factory.pin(RELAY)
    (pin.drive_high if (locked if before == "at_locked_level" else unlocked) else pin.drive_low)()
    pin.clear_states()
    with DoorController(
        RELAY, active_high=active_high, lock_type=lock_type, pin_factory=factory
    ) as door:
        assert pin.function == "output"
        assert pin.state == locked
        assert not door.is_unlocked
        # The only transition allowed is straight to "locked": never via the unlocked level.
        assert levels(pin)[1:] == ([] if before == "at_locked_level" else [locked])


@WIRINGS
def test_grant_pulse_starts_and_relocks_after_unlock_seconds(
    factory, events, lock_type, active_high
):
    locked, unlocked = WIRING[lock_type, active_high]
    door = DoorController(
        RELAY,
        active_high=active_high,
        lock_type=lock_type,
        unlock_seconds=PULSE,
        pin_factory=factory,
        on_event=events,
    )
    pin = factory.pin(RELAY)
    pin.clear_states()
    try:
        door.unlock("face", person="ada")
        assert door.is_unlocked and pin.state == unlocked
        relocked = events.wait_for("relocked")
        assert not door.is_unlocked and pin.state == locked
        assert levels(pin) == [locked, unlocked, locked]
        pulse = pin.states[2].timestamp  # time between the two changes
        assert PULSE - 0.005 <= pulse <= PULSE + SLACK
        assert events.names() == ["unlocked", "relocked"]
        assert events.of("unlocked")[0][0] == {
            "reason": "face",
            "person": "ada",
            "seconds": PULSE,
            "extended": False,
        }
        assert relocked["reason"] == "timeout"
    finally:
        door.close()


@WIRINGS
def test_second_grant_extends_the_pulse(factory, events, lock_type, active_high):
    locked, unlocked = WIRING[lock_type, active_high]
    door = DoorController(
        RELAY,
        active_high=active_high,
        lock_type=lock_type,
        unlock_seconds=PULSE,
        pin_factory=factory,
        on_event=events,
    )
    pin = factory.pin(RELAY)
    pin.clear_states()
    try:
        door.unlock("face", person="ada")
        time.sleep(PULSE / 2)  # the scenario: a second grant arrives mid-pulse
        second = time.monotonic()
        door.unlock("face", person="bob")
        events.wait_for("relocked")
        relocked_at = events.of("relocked")[0][1]
        assert relocked_at - second >= PULSE - 0.005  # counted from the second grant
        assert relocked_at - second <= PULSE + SLACK
        assert levels(pin) == [locked, unlocked, locked]  # one pulse, no relock in between
        assert [d["extended"] for d, _ in events.of("unlocked")] == [False, True]
        assert [d["person"] for d, _ in events.of("unlocked")] == ["ada", "bob"]
    finally:
        door.close()


@WIRINGS
def test_close_during_a_pulse_leaves_it_locked_and_releases_the_pins(
    factory, events, lock_type, active_high
):
    locked, unlocked = WIRING[lock_type, active_high]
    door = DoorController(
        RELAY,
        active_high=active_high,
        lock_type=lock_type,
        unlock_seconds=30,
        pin_factory=factory,
        on_event=events,
    )
    pin = factory.pin(RELAY)
    door.unlock("face")
    assert pin.state == unlocked
    door.close()
    assert pin.state == locked
    assert events.wait_for("relocked")["reason"] == "close"
    assert not door_timer_alive(RELAY)
    with pytest.raises(DoorError, match="closed"):
        door.unlock("face")
    assert pin.state == locked
    DigitalOutputDevice(RELAY, pin_factory=factory).close()  # the pin is free again


@WIRINGS
def test_exception_inside_with_block_leaves_it_locked(factory, lock_type, active_high):
    locked, unlocked = WIRING[lock_type, active_high]
    pin = factory.pin(RELAY)
    with pytest.raises(RuntimeError, match="camera fell off"):
        with DoorController(
            RELAY, active_high=active_high, lock_type=lock_type, pin_factory=factory
        ) as door:
            door.unlock("face")
            assert pin.state == unlocked
            raise RuntimeError("camera fell off")
    assert door.closed and pin.state == locked


def test_close_twice_then_reopen(factory):
    door = DoorController(RELAY, contact_pin=CONTACT, exit_button_pin=EXIT, pin_factory=factory)
    door.close()
    door.close()
    with DoorController(
        RELAY, contact_pin=CONTACT, exit_button_pin=EXIT, pin_factory=factory
    ) as again:
        again.unlock("face")
        assert again.is_unlocked


def test_failing_event_callback_does_not_stop_the_relock(factory, caplog):
    def explode(name, data):
        raise ValueError(f"event log is full ({name})")

    pin = factory.pin(RELAY)
    with DoorController(RELAY, unlock_seconds=PULSE, pin_factory=factory, on_event=explode) as door:
        pin.clear_states()
        door.unlock("face")
        pin.wait_for_states(3)  # unlocked, then relocked by the timer all the same
        assert levels(pin) == [False, True, False]
    assert "on_event callback failed" in caplog.text


class RelayFailsToOpen(EventPin):
    """A relay line whose driver fails whenever it is asked for the unlocked level."""

    def _set_state(self, value: bool) -> None:
        if value and self.function == "output":
            raise OSError("GPIO line write failed")
        super()._set_state(value)


def test_relay_write_failure_raises_door_error_and_stays_locked(factory, events):
    pin = factory.pin(RELAY, pin_class=RelayFailsToOpen)
    with DoorController(RELAY, pin_factory=factory, on_event=events) as door:
        with pytest.raises(DoorError, match="could not drive the relay"):
            door.unlock("face")
        assert not door.is_unlocked and pin.state is False
    assert "unlocked" not in events.names()


# -- exit button ----------------------------------------------------------------------------


@pytest.mark.parametrize("pull_up", [True, False])
def test_exit_button_press_pulses_the_relay(factory, events, pull_up):
    button, relay = factory.pin(EXIT), factory.pin(RELAY)
    with DoorController(
        RELAY,
        unlock_seconds=PULSE,
        exit_button_pin=EXIT,
        exit_button_pull_up=pull_up,
        pin_factory=factory,
        on_event=events,
    ) as door:
        relay.clear_states()
        (button.drive_low if pull_up else button.drive_high)()  # press
        assert door.is_unlocked
        (button.drive_high if pull_up else button.drive_low)()  # release
        events.wait_for("relocked")
        assert events.names() == ["exit_request", "unlocked", "relocked"]
        assert events.of("unlocked")[0][0]["reason"] == "exit_button"
        assert levels(relay) == [False, True, False]


# -- door contact ---------------------------------------------------------------------------


@pytest.mark.parametrize("closed_when", ["low", "high"])
def test_contact_reports_forced_and_legitimate_openings(factory, events, closed_when):
    contact = factory.pin(CONTACT)
    close_door, open_door = (
        (contact.drive_low, contact.drive_high)
        if closed_when == "low"
        else (contact.drive_high, contact.drive_low)
    )
    with DoorController(
        RELAY,
        unlock_seconds=30,
        contact_pin=CONTACT,
        contact_closed_when=closed_when,
        pin_factory=factory,
        on_event=events,
    ) as door:
        assert door.is_door_open  # the pull resistor reads "open" until the reed closes
        close_door()
        assert door.is_door_open is False
        open_door()  # nobody was granted: forced
        close_door()
        door.unlock("face", person="ada")
        open_door()  # during the pulse: a normal opening
        close_door()
    assert events.names() == [
        "door_closed",
        "door_opened",
        "door_forced",
        "door_closed",
        "unlocked",
        "door_opened",
        "door_closed",
        "relocked",
    ]
    assert [d["forced"] for d, _ in events.of("door_opened")] == [True, False]


def test_held_open_is_reported_once_per_opening(factory, events):
    contact = factory.pin(CONTACT)
    with DoorController(
        RELAY,
        unlock_seconds=3 * PULSE,
        contact_pin=CONTACT,
        held_open_seconds=PULSE,
        pin_factory=factory,
        on_event=events,
    ) as door:
        contact.drive_low()  # closed
        door.unlock("face")
        contact.drive_high()  # opened
        held = events.wait_for("door_held_open")
        assert PULSE - 0.005 <= held["open_seconds"] <= PULSE + SLACK
        events.wait_for("relocked")  # 3x the held-open time later ...
        assert len(events.of("door_held_open")) == 1  # ... still reported only once
        contact.drive_low()
        assert events.wait_for("door_closed", count=2)["open_seconds"] >= 3 * PULSE - 0.01

        # A door closed again in time raises nothing.
        door.unlock("face")
        contact.drive_high()
        contact.drive_low()
        events.wait_for("relocked", count=2)
        assert len(events.of("door_held_open")) == 1


def test_door_open_at_start_counts_as_held_open(factory, events):
    with DoorController(
        RELAY,
        contact_pin=CONTACT,
        held_open_seconds=PULSE,
        pin_factory=factory,
        on_event=events,
    ):
        events.wait_for("door_held_open")
    assert events.names() == ["door_held_open"]  # neither "opened" nor "forced" at start


# -- construction ---------------------------------------------------------------------------


def test_construction_failure_releases_everything(factory):
    relay = factory.pin(RELAY)
    with pytest.raises(DoorError, match="could not be set up") as caught:
        DoorController(
            RELAY, contact_pin=CONTACT, exit_button_pin=CONTACT, pin_factory=factory
        )  # the button wants the contact's pin
    assert isinstance(caught.value.__cause__, GPIOPinInUse)
    assert relay.state is False  # locked (fail-secure, active high)
    assert not door_timer_alive(RELAY)
    # Nothing stayed reserved: both pins can be claimed again.
    DigitalOutputDevice(RELAY, pin_factory=factory).close()
    DigitalInputDevice(CONTACT, pin_factory=factory).close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lock_type": "fail_open"}, "lock_type"),
        ({"unlock_seconds": 0}, "unlock_seconds"),
        ({"unlock_seconds": float("nan")}, "unlock_seconds"),
        ({"held_open_seconds": -1}, "held_open_seconds"),
        ({"contact_closed_when": "open"}, "contact_closed_when"),
        ({"led_denied": "GPIO99"}, "GPIO99"),
    ],
)
def test_bad_settings_raise_door_error_and_reserve_nothing(factory, kwargs, message):
    with pytest.raises(DoorError, match=message):
        DoorController(RELAY, pin_factory=factory, **kwargs)
    DigitalOutputDevice(RELAY, pin_factory=factory).close()


def test_simulation_must_be_explicit_and_is_announced(caplog):
    caplog.set_level(logging.WARNING, logger="pi_facegate.door")
    assert make_pin_factory(False) is None
    assert not caplog.records
    assert isinstance(make_pin_factory(True), MockFactory)
    assert "GPIO is SIMULATED" in caplog.text


def test_mock_chosen_by_environment_is_announced(monkeypatch, caplog):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setattr(Device, "pin_factory", None)
    caplog.set_level(logging.WARNING, logger="pi_facegate.door")
    DoorController(RELAY).close()
    assert "GPIO is SIMULATED" in caplog.text
    assert "GPIOZERO_PIN_FACTORY" in caplog.text


@pytest.mark.skipif(
    Path("/proc/device-tree/model").exists() or importlib.util.find_spec("lgpio") is not None,
    reason="this machine has real GPIO; the test would drive a real pin",
)
def test_default_factory_without_gpio_is_an_error_not_a_mock(monkeypatch):
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    with pytest.warns(Warning):  # gpiozero's PinFactoryFallback for each backend tried
        with pytest.raises(DoorError, match="pin factory"):
            DoorController(RELAY)


# -- LEDs and buzzer ------------------------------------------------------------------------


def test_signals_blink_their_pattern_on_configured_devices_only(factory):
    granted, denied, enrol, buzzer = (factory.pin(p) for p in (LED_OK, LED_NO, LED_ENROL, BUZZER))
    with DoorController(
        RELAY,
        unlock_seconds=PULSE,
        led_granted=LED_OK,
        led_denied=LED_NO,
        led_enrolment=LED_ENROL,
        buzzer_pin=BUZZER,
        pin_factory=factory,
    ) as door:
        door.signal("denied")
        denied.wait_for_states(7)  # off + 3 x (on, off)
        buzzer.wait_for_states(3)  # off + one long beep
        assert levels(denied) == [False, True, False, True, False, True, False]
        assert levels(buzzer) == [False, True, False]
        door.signal("granted")
        granted.wait_for_states(3)  # on for the unlock time, once
        on_for = granted.states[2].timestamp
        assert PULSE - 0.005 <= on_for <= PULSE + SLACK
        assert levels(enrol) == [False]  # not part of either pattern
        with pytest.raises(DoorError, match="unknown signal"):
            door.signal("party")
    assert door.closed
    door.signal("denied")  # after close: silently nothing


def test_the_alarm_pattern_is_six_beeps_and_a_fast_red_blink(factory):
    denied, buzzer = factory.pin(LED_NO), factory.pin(BUZZER)
    with DoorController(RELAY, led_denied=LED_NO, buzzer_pin=BUZZER, pin_factory=factory) as door:
        door.signal("alarm")
        buzzer.wait_for_states(13)  # off + 6 x (on, off): unlike a denial's one long beep
        denied.wait_for_states(21)
        assert levels(buzzer) == [False] + [True, False] * 6
        assert levels(denied) == [False] + [True, False] * 10


def test_signals_are_no_ops_without_leds(factory):
    with DoorController(RELAY, pin_factory=factory) as door:
        for kind in (
            "granted",
            "denied",
            "alarm",
            "enrolment_start",
            "enrolment_ok",
            "enrolment_failed",
        ):
            door.signal(kind)
        assert levels(factory.pin(RELAY)) == [False]  # the relay is never a signal


def test_the_contact_and_the_exit_button_are_debounced_as_configured(factory):
    """gpiozero's bounce_time reaches the pins (the mock pin keeps it; lgpio applies it)."""
    from pi_facegate.config.loader import parse_config
    from pi_facegate.daemon.wiring import make_door

    with DoorController(
        RELAY,
        contact_pin=CONTACT,
        exit_button_pin=EXIT,
        contact_bounce_seconds=0.08,
        exit_button_bounce_seconds=0.0,
        pin_factory=factory,
    ):
        assert factory.pin(CONTACT).bounce == pytest.approx(0.08)
        assert factory.pin(EXIT).bounce is None  # 0 = no debounce
    config = parse_config({"door": {"contact": {"pin": CONTACT}, "exit_button": {"pin": EXIT}}})
    assert config.door.contact.bounce_seconds == config.door.exit_button.bounce_seconds == 0.05
    with make_door(config, simulate=True, on_event=lambda *a: None) as door:
        assert door.pin_factory.pin(CONTACT).bounce == pytest.approx(0.05)
        assert door.pin_factory.pin(EXIT).bounce == pytest.approx(0.05)


@pytest.mark.parametrize("value", [-0.01, 1.5, float("nan")])
def test_a_debounce_outside_0_to_1_second_is_refused(factory, value):
    with pytest.raises(DoorError, match="debounce"):
        DoorController(
            RELAY, exit_button_pin=EXIT, exit_button_bounce_seconds=value, pin_factory=factory
        )


def test_the_enrolment_button_is_debounced(factory):
    from pi_facegate.door.buttons import EnrolmentButton

    with EnrolmentButton(
        EXIT, lambda: None, lambda: None, pin_factory=factory, bounce_seconds=0.05
    ):
        assert factory.pin(EXIT).bounce == pytest.approx(0.05)
