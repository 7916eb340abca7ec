"""Data softening (pccompiler.train.Softening): the softened EM step is
EM on the soft-evidence likelihood, computed here by brute force (every
joint assignment of the true values, float64, autograd for the expected
counts); beta = 1 is plain EM; the reported LL is the reference backend's
log_prob under the softened parameters; Gaussians are refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import pccompiler as pc
from pccompiler.backends import reference
from pccompiler.errors import DataError, UnsupportedError
from pccompiler.train import Softening, em_step, train_em
from tests.factories import NUM_VARS, bernoulli_model, gaussian_model, small_dense_model, \
    tied_model


def _compiled(model):
    return pc.compile(model, backend="torch", device="cpu", dtype="float64")


def _data(cats: int, n: int = 24, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, cats, (n, NUM_VARS))


def _channel(cats: int, beta: float, kernel: str, train: np.ndarray, var: int) -> np.ndarray:
    """q[x, c]: the evidence weight of true value c when x is observed."""
    if kernel == "uniform":
        q = np.full((cats, cats), (1 - beta) / (cats - 1))
        np.fill_diagonal(q, beta)
        return q
    freq = np.bincount(train[:, var], minlength=cats) / len(train)
    return beta * np.eye(cats) + (1 - beta) * freq[None, :]


def brute_force_em(model, x: np.ndarray, cats: int, beta: float, kernel: str, step: float,
                   pc_: float):
    """(soft-evidence LL per sample, circuit after one EM step), by brute
    force: the likelihood of sample n sums p(c) q(x_n, c) over every joint
    true value c; the expected statistics are the plain (hard) statistics
    of every c weighted by its posterior mass sum_n p(c | x_n)."""
    circuit = _compiled(model)
    eng = circuit.engine
    joint = np.array(list(itertools.product(range(cats), repeat=NUM_VARS)))
    log_q = np.zeros((len(x), len(joint)))
    for v in range(NUM_VARS):
        q = _channel(cats, beta, kernel, x, v)
        log_q += np.log(q[x[:, v][:, None], joint[:, v][None, :]])
    with torch.no_grad():
        log_p = circuit.log_prob(joint).double()[None, :] + torch.as_tensor(log_q)  # [N, J]
        lls = torch.logsumexp(log_p, dim=1)
        weight = torch.softmax(log_p, dim=1).sum(0)                                 # [J]
        stats = [torch.zeros_like(t) for t in (eng.sum_param_flows, eng.input_param_flows,
                                              eng.input_node_flows)]
        for j in range(len(joint)):
            eng.zero_flows()
            circuit.accumulate_flows(joint[j:j + 1])
            for acc, t in zip(stats, (eng.sum_param_flows, eng.input_param_flows,
                                      eng.input_node_flows)):
                acc += weight[j] * t
        for acc, t in zip(stats, (eng.sum_param_flows, eng.input_param_flows,
                                  eng.input_node_flows)):
            t.copy_(acc)
    circuit.em_update(step, pc_)
    return lls.numpy(), circuit


@pytest.mark.parametrize("factory,kernel", [(small_dense_model, "uniform"),
                                            (tied_model, "uniform"),
                                            (small_dense_model, "marginal"),
                                            (bernoulli_model, "uniform")])
def test_softened_em_step_equals_brute_force_em(factory, kernel):
    model = factory(seed=3)
    cats = model.variables[0].num_cats
    x, beta, step, pc_ = _data(cats), 0.9, 0.7, 0.1
    want_lls, want = brute_force_em(model, x, cats, beta, kernel, step, pc_)
    circuit = _compiled(model)
    soft = Softening(circuit, beta, kernel, x)
    lls = em_step(circuit, x, step, pc_, soft)
    np.testing.assert_allclose(lls.numpy(), want_lls, rtol=1e-10)
    torch.testing.assert_close(circuit.sum_params, want.sum_params, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(circuit.input_params, want.input_params, rtol=1e-9, atol=1e-12)


def test_softened_ll_is_reference_log_prob_under_softened_parameters():
    model = small_dense_model(seed=5)
    circuit, x = _compiled(model), _data(3)
    before = circuit.input_params.detach().clone()
    soft = Softening(circuit, 0.95)
    with soft:
        softened = circuit.to_model()
        lls = circuit.accumulate_flows(x)
        p = circuit.input_params.detach()
        assert not torch.equal(p, before)
    # the Model stores its tensors in float32: p' is rounded there
    np.testing.assert_allclose(lls.numpy(), reference.log_prob(softened, x), rtol=1e-6)
    assert torch.equal(circuit.input_params.detach(), before)        # p is back, bit for bit
    # p' = a p + b is a distribution: the softened model is normalised
    joint = np.array(list(itertools.product(range(3), repeat=NUM_VARS)))
    assert np.exp(reference.log_prob(softened, joint)).sum() == pytest.approx(1.0, abs=1e-6)


def test_beta_one_is_plain_em_exactly():
    x = _data(3, n=64)
    plain, soft = _compiled(small_dense_model(seed=2)), _compiled(small_dense_model(seed=2))
    h1 = train_em(plain, x, x, epochs=2, batch_size=16, em="mini", step_size=0.3)
    h2 = train_em(soft, x, x, epochs=2, batch_size=16, em="mini", step_size=0.3, soften=1.0)
    assert [h.train_ll for h in h1] == [h.train_ll for h in h2]
    assert torch.equal(plain.sum_params, soft.sum_params)
    assert torch.equal(plain.input_params, soft.input_params)
    # and beta -> 1 converges to it
    near = _compiled(small_dense_model(seed=2))
    train_em(near, x, None, epochs=2, batch_size=16, em="mini", step_size=0.3,
             soften=1 - 1e-9)
    torch.testing.assert_close(near.input_params, plain.input_params, rtol=0, atol=1e-6)


def test_full_batch_softening_trains_and_validates_on_plain_parameters():
    x = _data(3, n=64)
    circuit = _compiled(small_dense_model(seed=4))
    hist = train_em(circuit, x, x, epochs=3, batch_size=20, em="full", step_size=1.0,
                    pseudocount=0.1, soften=0.95)
    # the train LL is that of the softened data (lower), the valid LL the model's own
    assert all(h.train_ll < h.valid_ll for h in hist)


def test_gaussian_and_bad_beta_are_refused():
    with pytest.raises(UnsupportedError, match="Gaussian"):
        Softening(_compiled(gaussian_model()), 0.99)
    with pytest.raises(UnsupportedError, match="categorical"):
        Softening(_compiled(bernoulli_model()), 0.99, "marginal", _data(2))
    for beta in (0.0, 1.5, float("nan")):
        with pytest.raises(DataError, match="beta"):
            Softening(_compiled(small_dense_model()), beta)


def test_pcc_train_soften_flag(tmp_path, capsys):
    from pccompiler import ir
    from pccompiler.cli.main import main as pcc
    from pccompiler.data import load_debd
    train = load_debd("nltcs", "train")[:1000]
    model = pc.lower(pc.hclt(train.astype(np.int64), num_latents=4, num_cats=2, seed=0))
    ir.save(model, str(tmp_path / "m.pcir"))
    np.savetxt(tmp_path / "train.data", train, fmt="%d", delimiter=",")
    common = [str(tmp_path / "m.pcir"), "--data", str(tmp_path / "train.data"), "--valid",
              str(tmp_path / "train.data"), "--epochs", "2", "--batch-size", "250", "--quiet"]
    lines = {}
    for name, extra in (("plain", []), ("soft", ["--soften", "0.99"])):
        assert pcc(["train", *common, *extra, "-o", str(tmp_path / f"{name}.pcc")]) == 0
        lines[name] = capsys.readouterr().out.splitlines()[1]        # epoch 2
    train_ll, valid_ll = (float(lines["soft"].split(k)[1].split()[0]) for k in
                          ("train LL", "valid LL"))
    assert train_ll < valid_ll - 0.5        # softened data vs the same data unsoftened
    assert lines["plain"] != lines["soft"]
    for bad in ("1.5", "0", "nan"):
        code = pcc(["train", *common, "--soften", bad, "-o", str(tmp_path / "bad.pcc")])
        err = capsys.readouterr().err
        assert code == 1 and "--soften" in err and "Traceback" not in err, err
    assert not (tmp_path / "bad.pcc").exists()


class _OneRank:
    """The `sync` interface of pccompiler.train.distributed.DataParallel, one rank."""

    def split(self, rows):
        return rows

    def reduce_flows(self, circuit):
        pass

    def sum(self, value):
        return value


@pytest.mark.parametrize("em", ["mini", "full"])
def test_softening_on_the_data_parallel_path(em):
    x = _data(3, n=48)
    alone, ranked = _compiled(small_dense_model(seed=6)), _compiled(small_dense_model(seed=6))
    kw = dict(epochs=2, batch_size=16, em=em, step_size=0.5, soften=0.97)
    h1 = train_em(alone, x, **kw)
    h2 = train_em(ranked, x, sync=_OneRank(), **kw)
    assert [h.train_ll for h in h1] == pytest.approx([h.train_ll for h in h2], rel=1e-12)
    torch.testing.assert_close(ranked.input_params, alone.input_params, rtol=1e-12, atol=0)
    torch.testing.assert_close(ranked.sum_params, alone.sum_params, rtol=1e-12, atol=0)
