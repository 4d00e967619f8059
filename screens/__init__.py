"""Textual screens of the wizard (one module per screen, a .tcss beside it)."""
