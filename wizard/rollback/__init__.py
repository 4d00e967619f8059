"""Taking an upgrade back: the packages recorded before it, and (when asked) the database from its backup."""
