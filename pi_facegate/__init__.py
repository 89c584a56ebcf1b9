"""pi-facegate: a face-recognition door controller for the Raspberry Pi.

The package is split into a pure core (numpy in, plain data out: detection, alignment,
embedding, matching, access policy) and thin adapters for the hardware and the OS
(picamera2, gpiozero, systemd), each with a real stand-in that runs on any machine.
"""

__version__ = "0.1.0"
