"""The config room: one annotated YAML file, validated in one place before it reaches the door.

* ``schema.py`` -- the pydantic models, section by section up to the root ``Config``, with
  their bounds and cross-field rules; ``iter_fields`` walks every key.
* ``access.py`` -- the ``access`` section (votes, time zone, alarm limits) and the
  ``schedules`` mapping, each window parsed.
* ``gpio.py`` -- the door's GPIO sections (relay, contact, exit button, LEDs, buzzer), the
  keys that hold a BCM pin (``PIN_KEYS``) and the rule that no pin is used twice.
* ``base.py`` -- the strict base model every section derives from and the ``Violation``
  machinery a cross-field rule reports through.
* ``loader.py`` -- reading YAML with line numbers (``load_config``, ``parse_config_text``,
  ``parse_config``) and turning every validation error into a ``ConfigProblem`` with its
  line, key and value.

Nothing here imports the camera, door, daemon or CLI rooms.
"""
