"""The pure core: numpy arrays in, plain data out. No hardware, no files, no models.

Imports only numpy, OpenCV, the standard library, :mod:`pi_facegate.exc` and itself (the
import contract in ``.importlinter`` and ``tests/test_import_contract.py`` enforce it), so
every rule that decides who gets in can be tested with plain arrays and a passed-in clock.

* ``faces.py`` -- ``Face`` (box, keypoints, score) and the ``Detector`` interface.
* ``quality.py`` -- the quality gate: size, sharpness, brightness, pose.
* ``align.py`` -- the similarity warp of a face to the embedder's template.
* ``matcher.py`` -- the gallery index and 1:N search with threshold and margin.
* ``open_set.py`` -- the threshold for a gallery's size, from a target false accepts per attempt.
* ``tracker.py`` -- IoU tracking of faces across frames.
* ``policy.py`` -- the access policy: votes over frames, cooldowns, the decision.
* ``schedule.py`` -- weekly time windows ("Mon-Fri 07:00-19:00") and wall-clock local time.
* ``access_rules.py`` -- a person's schedule and validity dates, checked at a local time.
* ``attempts.py`` -- attempt limits: K refused faces in T seconds raise an alarm, a slowdown.
* ``capture.py`` -- the enrolment capture state machine (good, diverse frames of one face).
* ``planarity.py`` -- liveness cue: is the face a plane (a print, a screen) or a 3-D head?
* ``liveness.py`` -- fuses the liveness cues of a track into live / attack / waiting.
"""
