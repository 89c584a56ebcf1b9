"""Measuring the recognition pipeline: the core of ``facegate bench``.

A door must decide while the person is still walking up, and the budget is a Raspberry Pi,
so speed is measured, not guessed. This module runs real frames (a video file or an image
folder) through the door's own per-frame work -- detect, align (with the quality gate),
embed, match, decision (tracker + access policy) -- and reports per-stage and per-frame
milliseconds, frames per second, CPU time and peak memory. Optionally it runs the same
frames through the ``face_recognition`` library (dlib's HOG detector + dlib's ResNet, the
usual Raspberry Pi door recipe) in the same process, and compares speed and identities.

It also reports what each bundled model costs per inference (parameters and
multiply-accumulates, counted from the ``.tflite`` file with the runtime alone, so Pi
timings can be estimated before they are measured on one) and how long a gallery search
over many embeddings takes.

Every frame is processed completely (every detected face gated, aligned, embedded, matched),
even when the daemon would skip a face it has decided already: the numbers are the cost of a
frame in which someone new stands at the door, and the comparison with the peer, which
embeds every face of every frame, is like for like. Decoding a frame (the camera's work) is
not timed.

The parts: :mod:`.run` (one run and its report), :mod:`.pipeline` (our per-frame work),
:mod:`.peer` (``face_recognition``), :mod:`.frames` (frames in, results out),
:mod:`.costs` (parameters and MACs from the model files), :mod:`.gallery_search` (the 1:N
search on random galleries) and :mod:`.measure` (statistics, memory, versions).
"""
