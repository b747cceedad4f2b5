"""GPU fusion policy (qjaxrob.backend.fusion_policy, data in qjaxrob/gpu_costs.json): the
table is data (a changed file changes the policy), bad tables raise, the CPU policy is
fusion's own, and circuits fused under every GPU policy equal the unfused reference for
every block width the policy may emit."""

import json
from dataclasses import replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import random_unitary
from reference import statevector_ref

import qjaxrob as qjr
from qjaxrob import backend
from qjaxrob.sim import engine
from qjaxrob.errors import ParameterError
from qjaxrob.lower.fusion import DEFAULT_MAX_QUBITS, KERNEL_COST, Block, fuse
from qjaxrob.lower.pipeline import lower


def test_cpu_policy_is_fusions_own():
    for b in ("cpu", "tpu"):
        pol = backend.fusion_policy(b)
        assert pol.max_qubits == DEFAULT_MAX_QUBITS == 2
        assert dict(pol.cost) == KERNEL_COST


def test_gpu_policy_is_read_from_the_data_file(tmp_path):
    with open(backend.COSTS_FILE) as f:
        data = json.load(f)
    for ks in ("xla", "pallas"):
        pol = backend.fusion_policy("gpu", kernels=ks)
        entry = data["gpu"][ks]
        assert pol.max_qubits == entry["max_qubits"]
        table = {str(k): v for k, v in pol.cost}
        assert {k: table[k] for k in entry["cost"]} == entry["cost"]
        widest = max(int(k) for k in entry["cost"] if k.isdigit())
        assert table[str(widest + 1)] == 2 * table[str(widest)]  # extrapolated beyond
    data["gpu"]["xla"]["max_qubits"] = 1
    data["gpu"]["xla"]["cost"]["1"] = 0.5
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(data))
    pol = backend.load_gpu_costs(str(path))["xla"]
    assert pol.max_qubits == 1 and dict(pol.cost)[1] == 0.5


@pytest.mark.parametrize("change,match", [
    (lambda e: e["cost"].pop("2"), r"max_qubits=3 needs costs for \[2\]"),
    (lambda e: e["cost"].update({"diagonal": -1}), "cost 'diagonal' must be positive, got -1"),
    (lambda e: e.pop("cost"), "needs max_qubits and cost"),
])
def test_bad_tables_raise(tmp_path, change, match):
    data = {"gpu": {"xla": {"max_qubits": 3,
                            "cost": {"diagonal": 1, "permutation": 1, "1": 1, "2": 2, "3": 1.3}}}}
    change(data["gpu"]["xla"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ParameterError, match=match):
        backend.load_gpu_costs(str(path))


# ---- fused == unfused under every GPU policy ----------------------------------------------
N = 5


def _random_circuit(rng, active, n_gates=10):
    """Random 1- and 2-qubit gates (dense, diagonal, permutation; params and constants) on
    ``active`` of the 5 wires: greedy fusion then builds blocks as wide as ``active``
    allows, so circuits with 1..5 active wires make every width appear."""
    c, k = qjr.Circuit(N), 0
    for _ in range(n_gates):
        a, b = (int(w) for w in rng.choice(active, size=2, replace=len(active) < 2))
        kind = rng.integers(6) if a != b else 0
        if kind == 0:
            c = c.ry(a, qjr.param(k))
            k += 1
        elif kind == 1:
            c = c.rzz(a, b, qjr.param(k))
            k += 1
        elif kind == 2:
            c = c.cnot(a, b)
        elif kind == 3:
            c = c.unitary(random_unitary(rng, 4), (a, b))
        elif kind == 4:
            c = c.crx(a, b, qjr.param(k) * 0.7 + 0.2)
            k += 1
        else:
            c = c.h(a).t(b)
    return c


def _widths(ops):
    return {len(op.wires) for op in ops if isinstance(op, Block)}


@pytest.fixture(params=["xla", "pallas"])
def gpu_priced(request):
    """The GPU policy of one kernel set (passed to ``fuse`` as ``cost=``)."""
    return backend.fusion_policy("gpu", kernels=request.param)


def test_cpu_policy_fuses_exactly_like_the_default():
    """``cost=`` with the CPU policy's pairs gives the same blocks as ``cost=None``."""
    rng = np.random.default_rng(11)
    pol = backend.fusion_policy("cpu")
    for m in range(1, N + 1):
        c = _random_circuit(rng, rng.permutation(N)[:m], n_gates=14)
        assert fuse(c.ops, pol.max_qubits, pol.cost) == fuse(c.ops)


def test_engine_takes_the_backend_policy(monkeypatch, gpu_priced):
    """Without an explicit ``fuse_qubits``, ``engine.statevector_policy``/``final_tensor``
    fuse with ``backend.fusion_policy(kernels=...)``: a GPU policy there gives the
    GPU-priced blocks."""
    pol, asked = gpu_priced, []

    def policy(backend=None, kernels=None):
        asked.append(kernels)
        return pol

    rng = np.random.default_rng(4)
    c = _random_circuit(rng, np.arange(N), n_gates=12)
    monkeypatch.setattr(backend, "fusion_policy", policy)
    def nodes(policy):
        return lower(c.ops, N, replace(policy, prefix=False, interpret_blocks=0)).nodes

    got = nodes(engine.statevector_policy(kernels="xla"))
    assert got == fuse(c.ops, pol.max_qubits, pol.cost) != fuse(c.ops)
    assert nodes(engine.statevector_policy(fuse_qubits=2)) == fuse(c.ops)  # explicit width wins
    p = rng.uniform(-np.pi, np.pi, c.n_params)
    t = engine.final_tensor(c, p, jnp.zeros(0), jnp.complex128, False, kernels="xla")
    assert asked == ["xla", "xla"]
    np.testing.assert_allclose(np.asarray(t).reshape(-1), statevector_ref(c, p), atol=1e-12)


def test_fused_equals_unfused_for_every_emitted_width(gpu_priced):
    pol = gpu_priced
    rng = np.random.default_rng(3)
    circuits = [_random_circuit(rng, rng.permutation(N)[:m]) for m in range(1, N + 1)]
    params = [rng.uniform(-np.pi, np.pi, c.n_params) for c in circuits]
    prepare = partial(fuse, max_qubits=pol.max_qubits, cost=pol.cost)
    emitted = set().union(*(_widths(prepare(c.ops)) for c in circuits))
    assert emitted == set(range(1, pol.max_qubits + 1))  # every width it may emit

    def states(ps):
        op = engine.statevector_op(jnp.complex128, kernels="xla")
        return [engine.walk(prepare(c.ops), engine.zero_state(N, jnp.complex128), p,
                            jnp.zeros(0), op) for c, p in zip(circuits, ps)]

    got = jax.jit(states)(params)
    for c, p, s in zip(circuits, params, got):
        np.testing.assert_allclose(np.asarray(s).reshape(-1), statevector_ref(c, p), atol=1e-12)
