"""Pure logic in-process; at most a quick subprocess or a short-lived step (the wrapper, the runner)."""
