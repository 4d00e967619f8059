"""After the upgrade: the health check that proves the site works (the code, the schema, the services, the site)."""
