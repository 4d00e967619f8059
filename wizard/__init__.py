"""upgrade-wizard: the core (no Textual: the face is the screens package, started only by the commands)."""

__version__ = "0.1.0"
