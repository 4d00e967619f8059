"""upgrade-wizard: the core engine (no Textual import outside app.py)."""

__version__ = "0.1.0"
