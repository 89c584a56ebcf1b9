"""People's names as the gallery stores them: one rule, used by every way a name comes in
(photo enrolment, door enrolment arming, renames), so "Alice" typed twice is one person.
"""

from __future__ import annotations

import unicodedata

from pi_facegate.exc import InvalidPersonError

#: Longest accepted person name, in characters.
MAX_NAME_LENGTH = 100


def normalise_name(name: str) -> str:
    """A person's name as stored: NFC, stripped; empty, overlong or control chars refused.

    Names end up in logs and terminals, so control characters (newlines, escapes) are an
    :class:`InvalidPersonError`, not something to print.
    """
    if not isinstance(name, str):
        raise InvalidPersonError(f"a person's name must be text, not {name!r}")
    clean = unicodedata.normalize("NFC", name).strip()
    if not clean:
        raise InvalidPersonError("a person's name must not be empty")
    if len(clean) > MAX_NAME_LENGTH:
        raise InvalidPersonError(
            f"a person's name must be at most {MAX_NAME_LENGTH} characters, got {len(clean)}"
        )
    if any(unicodedata.category(ch).startswith("C") for ch in clean):
        raise InvalidPersonError(f"a person's name must not contain control characters: {clean!r}")
    return clean
