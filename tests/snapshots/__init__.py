"""SVG snapshots of every screen (pytest-textual-snapshot), stored in __snapshots__/test_snapshots/."""
