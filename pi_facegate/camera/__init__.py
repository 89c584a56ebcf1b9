"""Where frames come from: one :class:`~pi_facegate.camera.source.FrameSource` interface,
its backends, the wrappers that make a live camera fit a door, and the factory.

Every source follows picamera2's lifecycle — ``start()`` → ``read()`` … → ``stop()`` →
``close()`` — and hands out frames whose arrays the consumer owns (never a live camera
buffer). Every failure is a :class:`~pi_facegate.exc.CameraError`; a consumer that gets one
has no frame, so the door stays locked.

- ``source.py``: the :class:`~pi_facegate.camera.source.Frame` and
  :class:`~pi_facegate.camera.source.FrameSource` interface and the helpers the backends
  share (detection-image size, lores width and fps checks).
- ``replay.py``: :class:`~pi_facegate.camera.replay.ReplaySource`, a folder of images, a
  single image or a video file, as fast as possible or paced to a frame rate. The stand-in
  for a camera in tests and demos.
- ``opencv.py``: :class:`~pi_facegate.camera.opencv.OpenCVSource`, a USB camera, an RTSP
  stream or a video file via ``cv2.VideoCapture``.
- ``picamera.py``: :class:`~pi_facegate.camera.picamera.Picamera2Source`, the Pi camera
  (imports picamera2 only when started, so nothing else needs it).
- ``grabber.py``: :class:`~pi_facegate.camera.grabber.FrameGrabber` reads a live source on
  its own thread and keeps only the newest frame, so the recogniser never works on a stale
  queue. A replay source is *not* grabbed: read directly it delivers every frame in order,
  which is what a test or an evaluation needs.
- ``supervisor.py``: :class:`~pi_facegate.camera.supervisor.SupervisedSource` closes a
  camera that failed or stalled and reopens it with exponential back-off, reporting
  ``camera_error`` / ``camera_recovered`` events.
- ``factory.py``: :func:`~pi_facegate.camera.factory.create_source` (the bare backend) and
  :func:`~pi_facegate.camera.factory.create_camera` (what the door loop reads: grabbed and
  supervised if live, bare if a replay) from the config's
  :class:`~pi_facegate.config.schema.CameraConfig`, the one place camera settings are
  validated.

Nothing is re-exported here: import from the module that defines a name.
"""
