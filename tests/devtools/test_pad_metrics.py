"""ISO/IEC 30107-3 measures: APCER per species, BPCER, DET points, BPCER at an APCER."""

from __future__ import annotations

import numpy as np
import pytest

from pi_facegate.devtools import pad_metrics as m


@pytest.mark.parametrize(
    ("scores", "threshold", "errors"),
    [
        ([0.1, 0.5, 0.9], 0.5, 2),  # at the threshold counts as bona fide
        ([0.1, 0.5, 0.9], 0.95, 0),
        ([None, None, 0.9], 0.0, 1),  # no score never says live
        ([], 0.5, 0),
    ],
)
def test_apcer_counts_attacks_taken_for_live(scores, threshold, errors):
    rate = m.apcer(scores, threshold)
    assert (rate.errors, rate.total) == (errors, len(scores))


def test_bpcer_counts_live_taken_for_attacks_and_no_score_is_an_error():
    rate = m.bpcer([0.9, 0.7, None, 0.2], 0.7)
    assert (rate.errors, rate.total, rate.value) == (2, 4, 0.5)
    assert str(rate) == "50.0 % (2/4)"
    assert m.Rate(0, 0).value is None and "0 presentations" in str(m.Rate(0, 0))


def test_the_worst_species_is_reported():
    rates = m.apcer_by_species({"print": [0.0, 0.1], "phone": [0.8, 0.1, 0.9]}, 0.5)
    assert m.worst(rates) == m.Rate(2, 3)
    assert m.worst({}) == m.Rate(0, 0)


def test_det_curve_runs_from_all_accepted_to_all_refused():
    attacks, live = [0.1, 0.2, 0.6], [0.5, 0.8, 0.9, None]
    apcer, bpcer, thresholds = m.det_curve(attacks, live)
    assert apcer[0] == 1.0 and apcer[-1] == 0.0
    assert bpcer[0] == 0.25 and bpcer[-1] == 1.0  # the None live face is never accepted
    assert np.all(np.diff(apcer) <= 0) and np.all(np.diff(bpcer) >= 0)
    assert thresholds[-1] == np.inf


def test_bpcer20_is_read_where_apcer_is_at_most_five_percent():
    attacks = [i / 100 for i in range(100)]  # 0.00 .. 0.99
    live = [0.9, 0.96, 0.97, 0.99]
    bpcer, threshold = m.bpcer_at_apcer(attacks, live, 0.05)
    assert threshold == pytest.approx(0.95)  # 5 attacks (0.95..0.99) pass: APCER 5 %
    assert bpcer == 0.25  # 0.9 is refused there
    assert m.bpcer_at_apcer([], live, 0.05) == (None, None)


def test_probit_is_the_normal_deviate_and_clips_the_ends():
    z = m.probit(np.array([0.5, 0.0, 1.0]))
    assert z[0] == pytest.approx(0.0)
    assert z[1] == pytest.approx(-3.09, abs=0.01) and z[2] == pytest.approx(3.09, abs=0.01)
