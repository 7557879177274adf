"""Every label value the code counts under is one the metrics modules create at zero, so the
series an alert watches exists before its first increment."""

from __future__ import annotations

import re
from pathlib import Path

from receiver.metrics import CALLBACK_OUTCOMES, PROCESSING_OUTCOMES
from scheduler.metrics import EXPORT_OUTCOMES

ROOT = Path(__file__).resolve().parents[2]
PRE_CREATED = {
    "CALLBACKS": set(CALLBACK_OUTCOMES),
    "WINDOWS_PROCESSED": set(PROCESSING_OUTCOMES),
    "EXPORT_REQUESTS": set(EXPORT_OUTCOMES),
}


def test_every_counted_label_is_created_at_zero() -> None:
    for package in ("receiver", "scheduler", "archiver"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            for counter, value in re.findall(r'\b([A-Z_]+)\.labels\("([a-z_]+)"\)', text):
                if counter in PRE_CREATED:
                    assert value in PRE_CREATED[counter], f"{path}: {counter} {value!r}"


def test_processing_outcomes_cover_every_outcome_kind() -> None:
    from typing import get_args

    from receiver.processing import OutcomeKind

    assert set(get_args(OutcomeKind)) <= set(PROCESSING_OUTCOMES)
