"""The Textual face: Pilot tests of the screens, and the real program in a real terminal (tmux)."""
