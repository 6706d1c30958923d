"""Splitting a usage interval across hour buckets in exact decimals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal, localcontext

from schemas.events import QUANTITY_PLACES
from schemas.money import EXACT
from services.common.periods import HOUR, floor_hour

_STEP = Decimal(1).scaleb(-QUANTITY_PLACES)


@dataclass(frozen=True, slots=True)
class HourSlice:
    hour: datetime  # UTC start of the hour bucket
    start: datetime  # where the slice begins: the instant that decides its owner and its price
    quantity: Decimal


def split_into_hours(start: datetime, end: datetime, quantity: Decimal) -> list[HourSlice]:
    """Share ``quantity`` out over the hours that [start, end) touches, in proportion to overlap.

    Every part but the last is rounded down to 1e-9; the last takes the remainder, so the parts always sum
    exactly to ``quantity`` and none is negative."""
    if end <= start:
        raise ValueError("end must be after start")
    first_hour = floor_hour(start)
    if end <= first_hour + HOUR:  # the common case: one slice, no arithmetic
        return [HourSlice(first_hour, start, quantity)]
    total_us = _micros(end - start)
    slices: list[HourSlice] = []
    given = Decimal(0)
    hour = first_hour
    with localcontext(EXACT):
        while hour < end:
            piece_start = max(start, hour)
            piece_end = min(end, hour + HOUR)
            if piece_end >= end:
                slices.append(HourSlice(hour, piece_start, quantity - given))
                break
            share = (quantity * _micros(piece_end - piece_start) / total_us).quantize(_STEP, rounding=ROUND_DOWN)
            slices.append(HourSlice(hour, piece_start, share))
            given += share
            hour += HOUR
    return slices


def _micros(delta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
