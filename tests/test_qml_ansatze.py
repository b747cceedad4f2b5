"""Ansatze vs independent dense constructions from their documented definitions."""

import jax.numpy as jnp
import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.ir.circuit import Repeat
from qjaxrob.errors import ParameterError
from qjaxrob.qml import ansatze
from reference import embed, gate_matrix_ref

C128 = jnp.complex128


def run_ref(n, gates):
    """Applies ``[(name, wires, angles), ...]`` to |0...0> with dense embedded matrices."""
    psi = np.zeros(2**n, dtype=complex)
    psi[0] = 1
    for name, wires, angles in gates:
        psi = embed(gate_matrix_ref(name, angles), wires, n) @ psi
    return psi


def sim(c, params):
    return np.asarray(qjr.statevector(c, params, dtype=C128))


def test_hardware_efficient_layout(rng):
    n, layers = 3, 2
    c = ansatze.hardware_efficient(n, layers)
    p = rng.normal(size=c.n_params)
    gates = []
    for l in range(layers):
        for r, name in enumerate(("ry", "rz")):
            gates += [(name, (q,), [p[l * 2 * n + r * n + q]]) for q in range(n)]
        gates += [("cnot", (0, 1), []), ("cnot", (1, 2), []), ("cnot", (2, 0), [])]
    np.testing.assert_allclose(sim(c, p), run_ref(n, gates), atol=1e-12)


@pytest.mark.parametrize("n,layers", [(2, 3), (3, 5), (4, 2)])
def test_strongly_entangling_matches_definition(rng, n, layers):
    c = ansatze.strongly_entangling(n, layers, param_offset=1)
    assert c.n_params == 1 + 3 * layers * n
    assert all(isinstance(op, Repeat) for op in c.ops)
    p = rng.normal(size=c.n_params)
    gates = []
    for l in range(layers):
        for q in range(n):
            a, b, cc = p[1 + 3 * (l * n + q): 4 + 3 * (l * n + q)]
            gates += [("rz", (q,), [a]), ("ry", (q,), [b]), ("rz", (q,), [cc])]
        r = l % (n - 1) + 1
        gates += [("cnot", (q, (q + r) % n), []) for q in range(n)]
    np.testing.assert_allclose(sim(c, p), run_ref(n, gates), atol=1e-12)


def blocks_ref(n, pairs, p, layers):
    gates, k = [], 0
    for _ in range(layers):
        for a, b in pairs:
            gates += [("ry", (a,), [p[k]]), ("ry", (b,), [p[k + 1]]), ("cnot", (a, b), [])]
            k += 2
    return run_ref(n, gates)


@pytest.mark.parametrize("n,pairs", [
    (4, [(0, 1), (2, 3), (1, 3)]),
    (5, [(0, 1), (2, 3), (1, 3), (3, 4)]),
])
def test_tree_tensor_network_structure(rng, n, pairs):
    c = ansatze.tree_tensor_network(n, 2)
    p = rng.normal(size=c.n_params)
    assert c.n_params == 2 * 2 * (n - 1)
    np.testing.assert_allclose(sim(c, p), blocks_ref(n, pairs, p, 2), atol=1e-12)


def test_mps_structure(rng):
    c = ansatze.mps(4, 3)
    p = rng.normal(size=c.n_params)
    np.testing.assert_allclose(sim(c, p), blocks_ref(4, [(0, 1), (1, 2), (2, 3)], p, 3),
                               atol=1e-12)


@pytest.mark.parametrize("layers", [1, 3])
def test_cut_friendly_boundary_crossings(layers):
    for b in range(1, 6):
        assert ansatze.boundary_crossings(ansatze.mps(6, layers), b) == layers
    assert ansatze.boundary_crossings(ansatze.tree_tensor_network(8, layers), 4) == layers
    sel = sum(min(q, (q + r) % 6) < 3 <= max(q, (q + r) % 6)
              for r in (1, 2) for q in range(6))
    assert ansatze.boundary_crossings(ansatze.strongly_entangling(6, 2), 3) == sel == 6
    hea = ansatze.hardware_efficient(6, layers)
    assert ansatze.boundary_crossings(hea, 3) == 2 * layers  # ring: 2->3 and 5->0


def test_cut_at_marks_exactly_the_crossing_gates():
    for c in (ansatze.mps(5, 2, cut_at=2), ansatze.tree_tensor_network(4, 2, cut_at=2)):
        ops = c.unroll().ops
        marked = [op.wires for op in ops if op.cut]
        assert marked and all(min(w) < 2 <= max(w) for w in marked)
        assert len(marked) == ansatze.boundary_crossings(c, 2)


def test_bad_arguments_name_the_value():
    with pytest.raises(ParameterError, match="0"):
        ansatze.strongly_entangling(3, 0)
    with pytest.raises(ParameterError, match="boundary.*5"):
        ansatze.mps(4, cut_at=5)
    with pytest.raises(ParameterError, match="n_qubits=1"):
        ansatze.tree_tensor_network(1)
    with pytest.raises(ParameterError, match="boundary.*0"):
        ansatze.boundary_crossings(ansatze.mps(3), 0)
