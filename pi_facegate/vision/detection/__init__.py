"""Face detection backends behind the :class:`~pi_facegate.core.faces.Detector` interface.

* ``cpu.py`` -- reads the CPU's features: MediaPipe's native library dies with SIGILL on a
  Pi 4, so the choice is made before it is imported.
* ``factory.py`` -- ``create_detector``: ``auto`` / ``mediapipe`` / ``litert``.
* ``mediapipe_backend.py`` -- MediaPipe Tasks FaceDetector.
* ``litert_backend.py`` -- the same BlazeFace model on LiteRT, with the SSD decoding in numpy.
"""
