"""What the appliance keeps on disk: private files in the state directory.

* ``gallery.py`` -- people and their embeddings (one SQLite file, WAL, 0600).
* ``gallery_schema.py`` -- the gallery's table layout and the migration of older ones.
* ``gallery_vectors.py`` -- how embeddings are checked and stored (little-endian float32).
* ``access_rules.py`` -- each person's stored access rules (schedule, valid dates, note).
* ``gallery_file.py`` -- the gallery's file: created private, checked before SQLite opens it.
* ``gallery_marker.py`` -- the marker that remembers a gallery existed (a lost one is refused).
* ``gallery_export_file.py`` -- a gallery export (JSON, 0600, the embedder it came from);
  ``gallery_transfer.py`` -- importing one into this door's gallery in one transaction.
* ``trust.py`` -- the rules every state file must pass (owner, mode, no links, private dir).
* ``names.py`` -- the one rule for a person's name (NFC, no control characters).
* ``events.py`` -- the event log: the bounded writer thread and the reader.
* ``event_record.py`` -- an event and its kinds; ``event_file.py`` -- the event log's file.
* ``arming.py`` -- the administrator's enrolment arming file (owner and mode checked).
"""
