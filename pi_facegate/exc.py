"""Exception hierarchy.

Every error the appliance reports to a user is a :class:`FacegateError`. Like gpiozero's
``exc.py``, each also inherits from the closest builtin, so callers that only know
``ValueError`` or ``OSError`` still catch them. The CLI turns a ``FacegateError`` into a
one-line message and exit status 1 (a traceback only with ``DEBUG=1``).
"""


class FacegateError(Exception):
    """Base class of every error pi-facegate reports to a user."""


class UsageError(FacegateError, ValueError):
    """A command was called with arguments that do not make sense together."""


class ConfigError(FacegateError, ValueError):
    """The configuration file is missing, unreadable or invalid."""


class ModelError(FacegateError, RuntimeError):
    """A bundled model or its manifest is missing, corrupt or unusable."""


class ImageError(FacegateError, ValueError):
    """An image file could not be read or decoded."""


class NoFaceError(FacegateError, ValueError):
    """An image that must show exactly one face shows none, or none usable."""


class MultipleFacesError(FacegateError, ValueError):
    """An image that must show exactly one face shows several."""


class GalleryError(FacegateError, RuntimeError):
    """The gallery file is unreadable, corrupt, or not usable with this embedder."""


class GalleryMismatchError(GalleryError):
    """The gallery was made by a different embedder; its embeddings cannot be compared."""


class PersonNotFoundError(FacegateError, KeyError):
    """No person of that name (or id) is in the gallery."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "person not found"


class InvalidPersonError(FacegateError, ValueError):
    """A person's name (empty, overlong, control characters) or embeddings (none, NaN) are unusable."""


class DuplicatePersonError(FacegateError, ValueError):
    """A person of that name exists already, or the face already matches someone else."""


class CameraError(FacegateError, OSError):
    """The camera could not be opened, or stopped delivering frames."""


class CameraTimeoutError(CameraError, TimeoutError):
    """No frame arrived within the time a caller was willing to wait.

    Kept apart from other camera errors because a timeout alone is not a broken camera:
    the supervisor only reopens once frames have been missing for its stall limit.
    """


class DoorError(FacegateError, RuntimeError):
    """The door I/O (relay, contact, buttons) could not be set up."""


class EventLogError(FacegateError, RuntimeError):
    """The event log file is unreadable, corrupt, not an event log, or cannot be written."""


class EnrolmentError(FacegateError, RuntimeError):
    """Enrolment at the door could not be armed, or its capture gave no usable face.

    The message names the reason a person or an administrator can act on ("too blurred",
    "two faces", "already enrolled as 'Bob'", "the arming file is not valid JSON").
    """


class MqttError(FacegateError, RuntimeError):
    """The MQTT link cannot be set up: an unusable password or key file, or a bad setting.

    The broker being down or refusing the login is not one of these: the publisher reports
    that in the log and keeps retrying, and the door works on without it.
    """
