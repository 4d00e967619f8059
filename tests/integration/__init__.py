"""Real processes and servers: the program run as a process (run --yes, plan, status, demo), the state dir
under attack, real pip, PostgreSQL, MariaDB and supervisord."""
