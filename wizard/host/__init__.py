"""Probes of the host: the venv, pip, the database's schema, the services, processes and privileges."""
