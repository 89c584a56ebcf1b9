"""The model runtime: models described by their manifests, run on LiteRT or MediaPipe.

* ``manifest.py`` -- reading a model's JSON manifest (input, normalisation, sha256, ...).
* ``litert.py`` -- the TFLite interpreter (ai-edge-litert, else tflite-runtime).
* ``images.py`` -- reading image files into RGB arrays, with clear errors.
* ``detection/`` -- BlazeFace face detection: MediaPipe and LiteRT backends, chosen by CPU.
* ``landmarks.py`` -- the face mesh (468 points) that refines alignment.
* ``embedder.py`` -- the INT8 face embedder.
* ``antispoof.py`` -- the passive texture liveness models (MiniFASNet).
* ``recognizer.py`` -- one frame through detect -> quality -> align -> embed -> match.
"""
