"""The bad-input campaign of issue 15 as a test: every case of tests/bad_inputs.py -- each public entry
point of the Python API x each kind of bad input -- drawn by hypothesis a few times. Every draw must end
in a ValueError whose message starts with the argument's name, or in a valid (NaN-free) result where the
case allows one. bench/bad_input_campaign.py runs the same cases with more draws for docs/reliability.md.
"""

import pytest

from bad_inputs import CASES, ENTRIES, KINDS, run_case

EXAMPLES = 15  # per case: the ~220 cases take a few seconds together


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_by_name_or_gives_a_valid_result(case):
    outcomes = run_case(case, EXAMPLES)
    assert outcomes, "the strategy drew nothing"
    failures = [(value, o.detail) for value, o in outcomes if o.status == "failure"]
    assert not failures, "\n".join(f"{repr(v)[:120]} -> {d}" for v, d in failures[:5])


def test_every_entry_point_of_the_brief_is_covered():
    wanted = {
        "Mixture()", "Mixture.log_prob", "Mixture.posterior", "Mixture.sample", "Mixture.fit",
        "ConditionalMixture()", "ConditionalMixture.log_prob", "ConditionalMixture.posterior",
        "ConditionalMixture.sample", "HMM()", "HMM.log_prob", "HMM.posterior", "HMM.sample", "HMM.fit",
        "ConditionalHMM()", "ConditionalHMM.log_prob", "ConditionalHMM.sample", "CTC()", "CTC.log_prob",
        "CTC.posterior", "CTC.sample", "ctc_loss", "Autoregressive()", "Autoregressive.log_prob",
        "Autoregressive.sample", "LinearGaussian()", "LinearGaussian.log_prob", "LinearGaussian.posterior",
        "LinearGaussian.sample", "Generator()", "Generator.log_joint", "Generator.sample", "GridMRF()",
        "GridMRF.ising", "GridMRF.log_prob", "GridMRF.sample", "RBM()", "RBM.log_prob", "RBM.sample",
        "estimate.elbo", "estimate.iwae", "estimate.importance", "estimate.naive_mc", "estimate.ais",
        "estimate.bdmc", "estimate.ais_log_partition", "Colorizer.colorize", "Colorizer.segment",
        "Colorizer.sample", "Colorizer.palettes", "Colorizer.recolour", "Colorizer.log_prob",
    }  # fmt: skip
    assert wanted <= set(ENTRIES), sorted(wanted - set(ENTRIES))
    assert {c.kind for c in CASES} == set(KINDS)
