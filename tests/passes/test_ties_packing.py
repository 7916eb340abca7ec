"""tie-params, layerize levels, parameter packing and its EM helpers."""

import numpy as np
import pytest

from pccompiler import ir, passes
from pccompiler.errors import PassError
from pccompiler.ir import pcir
from pccompiler.backends.common.packing import (
    input_param_node_index, pack_parameters, sum_param_parent_index, unpack_parameters)
from tests import factories
from tests.passes.circuits import hmm_model

DETECT = passes.DEFAULT_PIPELINE.replace("tie-params", "tie-params{detect=true}")


def test_homogeneous_hmm_stores_transitions_once():
    length, hidden, vocab = 8, 16, 5
    tied = passes.compile_model(hmm_model(length, hidden, vocab))
    reserved = int(tied.layout.metadata["reserved_sum_params"])
    tail = int(tied.layout.metadata["sum_params_tail"])
    # one transition matrix + the initial distribution
    assert tied.layout.num_sum_params == reserved + hidden * hidden + hidden + tail
    assert tied.layout.num_input_params == hidden * vocab
    starts = {p.param_start for p in tied.layout.placements
              if tied.model.groups[p.group].kind == pcir.SUM and p.param_count == hidden * hidden}
    assert len(starts) == 1


def test_detect_finds_identical_copies_only():
    same = passes.compile_model(hmm_model(6, 8, 4, declare_ties=False), pipeline=DETECT)
    assert len(same.model.ties) == 2 * 6 - 3       # 5 emissions + 4 transitions tied
    differ = passes.compile_model(hmm_model(6, 8, 4, declare_ties=False, shared_values=False),
                                  pipeline=DETECT)
    assert len(differ.model.ties) == 0
    ir.check(same.model)


def test_detect_is_off_by_default_and_keys_on_parameters():
    model = hmm_model(4, 4, 3, declare_ties=False)
    assert len(passes.compile_model(model).model.ties) == 0
    items = passes.resolve_pipeline(DETECT, None)
    assert "parameters" in passes.cache_ingredients(model, items)
    assert "parameters" not in passes.cache_ingredients(model, passes.resolve_pipeline(None, None))


def test_declared_tie_to_a_tied_group_is_refused():
    model = hmm_model(4, 4, 3)
    model.ties[1].target = model.ties[0].group
    with pytest.raises(PassError, match="itself tied"):
        passes.compile_model(model, pipeline="tie-params,layerize,layout")


def test_levels_and_layers():
    result = passes.compile_model(factories.small_dense_model(seed=0))
    kinds = [(layer.level, layer.kind) for layer in result.layout.layers]
    assert kinds == [(0, pcir.INPUT_LAYER), (1, pcir.PRODUCT_LAYER), (2, pcir.SUM_LAYER),
                     (3, pcir.PRODUCT_LAYER), (4, pcir.SUM_LAYER)]
    assert list(result.layout.layers[0].groups) == [0, 1, 2, 3]
    assert result.layout.layers[0].slot_start == 2


@pytest.mark.parametrize("name", sorted(factories.ALL_FACTORIES))
def test_pack_unpack_round_trip(name):
    model = factories.ALL_FACTORIES[name](seed=5)
    result = passes.compile_model(model)
    sum_params, input_params = pack_parameters(result.model, result.layout)
    reserved = int(result.layout.metadata["reserved_sum_params"])
    assert (sum_params[:reserved] == 0).all()
    tensors = unpack_parameters(result.model, result.layout, sum_params, input_params)
    table = ir.tensor_table(result.model)
    owners = {g.input.params if g.kind == pcir.INPUT else g.sum.weights
              for g in result.model.groups if g.kind != pcir.PRODUCT} - {""}
    assert set(tensors) == owners
    for name_, array in tensors.items():
        assert array.dtype == table[name_].dtype and array.shape == table[name_].shape
        np.testing.assert_array_equal(array, table[name_])


@pytest.mark.parametrize("name", ["dense", "block_sparse", "sparse", "tied"])
def test_parent_index_normalises_weights(name):
    result = passes.compile_model(factories.ALL_FACTORIES[name](seed=2))
    sum_params, input_params = pack_parameters(result.model, result.layout)
    parent = sum_param_parent_index(result.layout)
    real = parent >= 0
    assert (sum_params[~real] == 0).all()
    totals = np.bincount(parent[real], weights=sum_params[real])
    np.testing.assert_allclose(totals[np.unique(parent[real])], 1.0, atol=1e-5)
    node = input_param_node_index(result.layout)
    assert (node >= 2).all()
    cats = np.bincount(node, weights=input_params)
    np.testing.assert_allclose(cats[np.unique(node)], 1.0, atol=1e-5)
