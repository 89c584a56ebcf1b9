"""What the appliance keeps on disk: private files in the state directory.

* ``gallery.py`` -- people and their embeddings (one SQLite file, WAL, 0600).
* ``gallery_file.py`` -- the gallery's file: created private, checked before SQLite opens it.
* ``names.py`` -- the one rule for a person's name (NFC, no control characters).
* ``events.py`` -- the event log: the bounded writer thread and the reader.
* ``event_record.py`` -- an event and its kinds; ``event_file.py`` -- the event log's file.
* ``arming.py`` -- the administrator's enrolment arming file (owner and mode checked).
"""
