"""What the tests share, imported by test modules and conftest.py alike; no test module imports another.

sites      throwaway instances over real venvs (make_site, step_toml, Site) and the CLI as a process (run_cli)
processes  waiting on processes and files (wait_for, wait_for_line) and killing what a test left running
headless   `run --yes` started and killed mid-step (counting_steps, start_and_kill, kill_step_and_wizard)
tui        Pilot helpers (until, screen_name, on_screen, site_app, straight_to_run)
planning   a plan's inputs without a host: an instance of a built-in recipe, detected facts
fakes      the stand-in for step processes (FakeSteps)
pg, mysql  private PostgreSQL and MariaDB servers
supervisor supervisord's shared config
wheels     hand-written wheels and venvs for real pip
"""
