"""Can this CPU run MediaPipe's native library?

mediapipe's arm64 wheels are built for ARMv8.2 CPUs and use, among others, the LSE atomic
instructions ARMv8.1 introduced: on a Raspberry Pi 4 (Cortex-A72, ARMv8.0, no LSE) merely
importing mediapipe kills the process with SIGILL, which no ``try`` can catch. The Pi 5
(Cortex-A76, ARMv8.2) runs it. So the detector factory asks this module *before* importing
mediapipe, and takes LSE atomics as the sign of a CPU new enough. The kernel reports LSE as ``atomics``
in the ``Features`` line of ``/proc/cpuinfo`` and as ``HWCAP_ATOMICS`` in the process's
auxiliary vector; the latter is what the running process really gets (it is also right under
qemu-user, where ``/proc/cpuinfo`` may describe the host).

The functions take the cpuinfo text (and optionally the hwcap word) as parameters so they can
be tested with samples from each board on any machine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
AT_HWCAP = 16  # <elf.h>: the auxv entry with the CPU capability bits
HWCAP_ATOMICS = 1 << 8  # arch/arm64/include/uapi/asm/hwcap.h: ARMv8.1 LSE atomics

_X86 = frozenset({"x86_64", "amd64"})
_ARM64 = frozenset({"aarch64", "arm64"})


@dataclass(frozen=True)
class CpuVerdict:
    """Whether mediapipe can run, and a sentence saying why (for the log)."""

    mediapipe_ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.mediapipe_ok


def cpu_features(cpuinfo: str) -> frozenset[str]:
    """The feature flags named in cpuinfo text (arm64 ``Features:``, x86 ``flags:`` lines)."""
    features: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("features", "flags"):
            features.update(value.split())
    return frozenset(features)


def mediapipe_verdict(machine: str, cpuinfo: str = "", hwcap: int | None = None) -> CpuVerdict:
    """Decide from the machine name (``platform.machine()``), cpuinfo text and AT_HWCAP.

    On arm64 either source reporting LSE atomics is enough; neither doing so means no.
    """
    machine = machine.lower()
    if machine in _X86:
        return CpuVerdict(True, f"{machine} CPU: mediapipe's x86-64 wheel runs here")
    if machine not in _ARM64:
        return CpuVerdict(False, f"{machine or 'unknown'} CPU: mediapipe has no build for it")
    if hwcap is not None and hwcap & HWCAP_ATOMICS:
        return CpuVerdict(
            True, "arm64 CPU with LSE atomics (HWCAP_ATOMICS): ARMv8.1+ like the Pi 5"
        )
    if "atomics" in cpu_features(cpuinfo):
        return CpuVerdict(True, "arm64 CPU with LSE atomics (cpuinfo): ARMv8.1+ like the Pi 5")
    return CpuVerdict(
        False,
        "arm64 CPU without LSE atomics (ARMv8.0, e.g. the Pi 4's Cortex-A72): "
        "mediapipe would die with SIGILL",
    )


def read_cpuinfo(path: Path = CPUINFO) -> str:
    """The text of /proc/cpuinfo, or "" where it cannot be read."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def read_hwcap() -> int | None:
    """This process's AT_HWCAP word from the C library's ``getauxval``, or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        getauxval = libc.getauxval
    except (OSError, AttributeError):
        return None
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    return int(getauxval(AT_HWCAP))


def this_cpu() -> CpuVerdict:
    """The verdict for the machine this process runs on."""
    machine = platform.machine()
    hwcap = read_hwcap() if machine.lower() in _ARM64 else None
    return mediapipe_verdict(machine, read_cpuinfo(), hwcap)
