"""Every case of the bad-input corpus fails clearly, leaves nothing half-written and loses nothing."""

import pytest

from landslide_pipeline_tests.reliability.corpus import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_input_fails_clearly_without_partial_outputs_or_losses(case, tmp_path):
    outcome = run_case(case, tmp_path)
    assert outcome.clear, f"{case.name}: {outcome.error or 'accepted'}"
    assert outcome.partial == []
    assert not outcome.lost
