"""The passes on the standard structures and real data (DEBD nltcs): the
layout evaluates exactly like the Model, and every pass output checks."""

import numpy as np
import pytest

import pccompiler as pc
from pccompiler import ir, passes
from pccompiler.ir import pcir
from pccompiler.backends.reference.layout_interp import layout_log_prob
from pccompiler.data.debd import load_debd
from tests.passes.circuits import reference_log_prob


@pytest.fixture(scope="module")
def nltcs():
    return np.asarray(load_debd("nltcs", "train"))[:2000], np.asarray(load_debd("nltcs", "test"))


def _compare(model, x, missing=None, pipeline=None):
    result = passes.compile_model(model, pipeline=pipeline, check_each=True)
    ir.check_layout(result.layout, result.model, deep=True)
    got = layout_log_prob(result.model, result.layout, x, missing)
    np.testing.assert_allclose(got, reference_log_prob(model, x, missing), rtol=0, atol=1e-10)
    return result


def test_hclt_on_nltcs(nltcs):
    train, test = nltcs
    model = pc.lower(pc.hclt(train, num_latents=8, num_cats=2, input_dist="bernoulli"))
    rng = np.random.default_rng(0)
    _compare(model, test[:64], rng.random(test[:64].shape) < 0.2)
    result = _compare(model, test[:64])
    # dense sums of 8 latents: parent blocks of 8
    assert {p.block_size for p in result.layout.placements
            if result.model.groups[p.group].kind == pcir.SUM and p.group != result.layout.root_group} \
        == {8}


@pytest.mark.parametrize("build", [
    lambda: pc.pd((4, 4), 8, split_intervals=2),
    lambda: pc.rat_spn(16, 8, 2, 2),
    lambda: pc.hmm(6, 8, 5),
])
def test_structures(build):
    model = pc.lower(build())
    rng = np.random.default_rng(1)
    cats = model.variables[0].num_cats
    x = rng.integers(0, cats, (16, len(model.variables)))
    _compare(model, x)
    _compare(model, x, pipeline=passes.DEFAULT_PIPELINE.replace(
        "tie-params", "tie-params{detect=true}").replace("layerize", "layerize{partitions=1}"))
