"""Developer tools: measuring speed and accuracy. The daemon never imports this package.

* ``bench/`` -- ``facegate bench``: per-stage timings, model costs, a peer side by side.
* ``evaluation.py`` -- ``facegate eval``: verification and identification measures.
"""
