"""What each end-to-end site installs, pinned: one place, so the wheelhouses and the tests agree."""

from __future__ import annotations

INDICO_OLD, INDICO_NEW, INDICO_PLUGINS = "3.2.6", "3.2.9", "3.2.2"
UWSGI = "2.0.31"
PRETALX_OLD, PRETALX_MID, PRETALX_NEW = "2024.3.1", "2025.1.0", "2025.2.2"

WHEELHOUSES: dict[str, list[list[str]]] = {
    "indico": [
        [f"indico=={INDICO_OLD}", f"indico-plugins=={INDICO_PLUGINS}"],
        [f"indico=={INDICO_NEW}", f"indico-plugins=={INDICO_PLUGINS}"],
        [f"uwsgi=={UWSGI}"],
    ],
    # [redis]: the cache (/healthcheck/ answers 503 without one) and the worker's broker are a real Redis;
    # kombu<5.6: 5.6+ refuses the redis-py 5.1 that 2024.3.1 pins (its worker would not start), as installed in 2024;
    # Faker and freezegun: `create_test_event` fills the old install with a real event.
    "pretalx": [
        [f"pretalx[redis]=={PRETALX_OLD}", "kombu<5.6", "packaging", "Faker", "freezegun"],
        [f"pretalx[redis]=={PRETALX_MID}", "setuptools<82"],
        [f"pretalx[redis]=={PRETALX_NEW}"],
        ["gunicorn"],
    ],
}
