"""One upgrade's record and its transitions: the Session, where it is kept, resuming it, the Engine."""
