"""Minimal ISO 8601 durations (``PnW``, ``PnD``, ``PTnH``, ``PTnM`` and their combinations)
and deadline arithmetic on the three clocks: hours, calendar days and business days."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)


class DurationError(ValueError):
    pass


@dataclass(frozen=True)
class Duration:
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0

    @property
    def has_time(self) -> bool:
        return bool(self.hours or self.minutes)

    @property
    def whole_days(self) -> int:
        return self.weeks * 7 + self.days

    def to_timedelta(self) -> timedelta:
        return timedelta(weeks=self.weeks, days=self.days, hours=self.hours, minutes=self.minutes)


def parse_duration(text: str) -> Duration:
    """Parse ``P3D``, ``PT24H``, ``P1W2D``, ``P1DT12H``, ``PT30M``...; raises DurationError."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise DurationError(
            f"{text!r} is not a duration; write e.g. PT24H (24 hours), P3D (3 days), P2W (2 weeks)"
        )
    parts = {key: int(value) if value else 0 for key, value in match.groupdict().items()}
    duration = Duration(**parts)
    if duration.to_timedelta() <= timedelta(0) and text not in ("PT0H", "PT0M", "P0D"):
        raise DurationError(f"{text!r} is not a duration")
    return duration


def check_duration(text: str) -> str:
    parse_duration(text)
    return text


def add_business_days(start: date, days: int, holidays: frozenset[date]) -> date:
    """The date ``days`` business days after ``start`` (Monday–Friday, not a holiday)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in holidays:
            remaining -= 1
    return current


def due_at(
    anchor: datetime,
    duration: str,
    clock: str,
    timezone: str,
    holidays: frozenset[date] = frozenset(),
) -> datetime:
    """When a deadline falls due, in UTC-aware form, computed in the protocol's time zone.

    ``hours``: the exact elapsed duration. ``calendar_days``: the same wall-clock time N days
    later in the protocol's zone. ``business_days``: N working days later (weekends and the given
    public holidays skipped), same wall-clock time.
    """
    if anchor.tzinfo is None:
        raise ValueError("anchor must be timezone-aware")
    parsed = parse_duration(duration)
    zone = ZoneInfo(timezone)
    local = anchor.astimezone(zone)
    if clock == "hours":
        return anchor + parsed.to_timedelta()
    if clock == "calendar_days":
        target = local.date() + timedelta(days=parsed.whole_days)
    elif clock == "business_days":
        target = add_business_days(local.date(), parsed.whole_days, holidays)
    else:
        raise ValueError(f"unknown clock {clock!r}")
    return datetime.combine(target, local.timetz()).replace(tzinfo=zone)
