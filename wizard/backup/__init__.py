"""Backups the wizard takes and verifies before anything changes, one dump module per database engine."""
