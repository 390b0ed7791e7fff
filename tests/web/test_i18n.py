"""Due times on the pages: the protocol's local time and "en 3 h" / "2 h late"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.web.i18n import local_time, relative

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


def test_relative_due_times_in_spanish_and_english() -> None:
    assert relative(NOW + timedelta(hours=3), NOW, "es") == "en 3 h"
    assert relative(NOW + timedelta(hours=3), NOW, "en") == "in 3 h"
    assert relative(NOW - timedelta(hours=2), NOW, "es") == "2 h de retraso"
    assert relative(NOW - timedelta(hours=2), NOW, "en") == "2 h late"
    assert relative(NOW + timedelta(minutes=25), NOW, "en") == "in 25 min"
    assert relative(NOW - timedelta(days=3, hours=1), NOW, "es") == "3 d de retraso"
    assert relative(NOW + timedelta(seconds=10), NOW, "en") == "in 1 min"


def test_local_time_is_the_protocols_time_zone() -> None:
    # 20:00 UTC is 14:00 in Guatemala (UTC-6, no daylight saving) and in Honduras.
    assert local_time(NOW, "America/Guatemala", "es") == "mar 01/12 14:00"
    assert local_time(NOW, "America/Tegucigalpa", "en") == "Tue 12/01 14:00"
