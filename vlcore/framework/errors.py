"""The configuration errors, below both the config loader and the registry
(which raises :class:`UnknownNameError` for a name nobody registered)."""


class ConfigError(ValueError):
    """A user-facing config mistake; always a single line."""

    def __init__(self, msg):
        super().__init__(" ".join(str(msg).splitlines()))


class UnknownNameError(ConfigError, KeyError):
    """Lets registry look-ups be caught as KeyError too, without KeyError's quoting."""
    __str__ = BaseException.__str__
