"""The ledger's rules, without a database: what a status means, how counts split, where a
watermark may move, when deletions wait for a person."""

from __future__ import annotations

import datetime as dt

import pytest

from legacy_sync.ledger import Counts, HoldPolicy, Mode, Status, next_watermark, split_counts, table_status


def test_counts_split_what_the_run_read() -> None:
    counts = split_counts(staged=17, rejected=2, created=3, updated=5, deleted=4, open_rejects=1, warned=6)
    assert (counts.created, counts.updated, counts.unchanged, counts.failed) == (3, 5, 7, 2)
    assert counts.processed == 17 + 4  # read from 4D in this run, plus deletions applied
    assert counts.missing == 3  # rejected now + still missing from earlier runs


def test_counts_refuse_to_add_up_wrong() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        split_counts(staged=2, rejected=1, created=1, updated=1, deleted=0)
    with pytest.raises(ValueError, match="negative"):
        split_counts(staged=1, rejected=-1, created=0, updated=0, deleted=0)


@pytest.mark.parametrize(
    ("counts", "failure", "status"),
    [
        (Counts(created=5), None, Status.COMPLETED),
        (Counts(unchanged=5, warned=3), None, Status.COMPLETED),  # warnings never lower a status
        (Counts(created=5, failed=1), None, Status.PARTIALLY_COMPLETED),
        (Counts(unchanged=5, open_rejects=1), None, Status.PARTIALLY_COMPLETED),  # earlier rejects count
        (Counts(unchanged=5, deletes_held=40), None, Status.PARTIALLY_COMPLETED),
        (Counts(created=5), "2 record(s) lost", Status.FAILED),
        (None, None, Status.FAILED),
    ],
)
def test_status_rules(counts: Counts | None, failure: str | None, status: Status) -> None:
    assert table_status(counts, failure) is status


def test_a_date_watermark_never_passes_4d_today_nor_moves_back() -> None:
    today = dt.date(2026, 11, 26)
    assert next_watermark("modified_date", "2026-11-20", "2031-05-01", today) == "2026-11-26"
    assert next_watermark("modified_date", "2026-11-20", "2026-11-22", today) == "2026-11-22"
    assert next_watermark("modified_date", "2026-11-25", "2026-11-22", today) == "2026-11-25"
    # a watermark an older release left in the future comes back to 4D's today
    assert next_watermark("modified_date", "2031-01-01", "2026-11-22", today) == "2026-11-26"
    assert next_watermark("modified_date", None, None, today) is None


def test_a_stamp_watermark_never_moves_back() -> None:
    assert next_watermark("global_stamp", "500", "700", None) == "700"
    assert next_watermark("global_stamp", "900", "700", None) == "900"  # an older run finishing late
    assert next_watermark("global_stamp", None, "700", None) == "700"


def test_only_reading_runs_move_watermarks() -> None:
    assert Mode.INCREMENTAL.moves_watermarks and Mode.FULL.moves_watermarks
    assert not Mode.REPLAY.moves_watermarks and not Mode.REPAIR.moves_watermarks


def test_a_sharp_drop_of_4d_count_holds_deletions() -> None:
    policy = HoldPolicy(share=0.05, min_rows=10)
    assert policy.count_drop(1000, 990) is None  # 1 %
    assert policy.count_drop(1000, 900) is not None and "10.0 %" in policy.count_drop(1000, 900)
    assert policy.count_drop(100, 90) is None  # a handful is never a mass change
    assert policy.count_drop(None, 10) is None and policy.count_drop(0, 0) is None
