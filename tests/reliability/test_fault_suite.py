"""The reduced fault suite in ``make test``; ``make reliability`` runs every case 3 times."""

from __future__ import annotations

import pytest

from reliability.cases import REDUCED, run_case

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.mark.parametrize("case", REDUCED)
def test_fault_loses_duplicates_and_misreports_nothing(case: str, pg_server: object) -> None:
    outcome = run_case(case)
    assert outcome.error is None, outcome.error
    assert outcome.expected > 1000
    assert (outcome.lost, outcome.duplicated, outcome.stale, outcome.extra) == (0, 0, 0, 0), outcome
    assert not outcome.untruthful, outcome.untruthful
