"""Gate fusion (qjaxrob.lower.fusion): fused == unfused == dense NumPy reference on random
circuits (Repeat included, both dtypes, fusion widths 1-3), static block classification,
the permutation kernel, and unchanged gradients."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qjaxrob as qjr
from helpers import TOL, circuits, finite_diff, random_inputs, random_unitary
from qjaxrob.lower.fusion import Block, block_apply_args, fuse
from qjaxrob.kernels.structured import apply_permutation, monomial
from qjaxrob.sim.engine import final_tensor
from reference import (
    embed, expval_ref, flat_ops, gate_matrix_ref, observable_matrix, resolve, statevector_ref,
)



@partial(jax.jit, static_argnames=("c", "dtype", "k"))
def _state(c, p, x, dtype, k):
    return final_tensor(c, p, x, dtype, False, fuse_qubits=k).reshape(-1)


@st.composite
def repeated_circuits(draw):
    """prefix + repeat(block, times) + suffix, all random."""
    block = draw(circuits(min_qubits=2, max_qubits=5, max_ops=8))
    n = block.n_qubits
    pre = draw(circuits(min_qubits=n, max_qubits=n, max_ops=4))
    post = draw(circuits(min_qubits=n, max_qubits=n, max_ops=4))
    times = draw(st.integers(1, 3))
    return pre + qjr.Circuit.repeat(block, times, param_offset=pre.n_params) + post


@pytest.mark.slow
@settings(max_examples=12)
@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
@given(c=st.one_of(circuits(max_qubits=6, max_ops=16), repeated_circuits()), k=st.integers(1, 3))
def test_fused_equals_unfused_equals_reference(dtype, c, k):
    p, x = random_inputs(c, seed=3)
    ref = statevector_ref(c, p, x)
    fused = np.asarray(_state(c, jnp.asarray(p), jnp.asarray(x), dtype, k))
    plain = np.asarray(_state(c, jnp.asarray(p), jnp.asarray(x), dtype, 0))
    np.testing.assert_allclose(fused, ref, atol=TOL[dtype])
    np.testing.assert_allclose(fused, plain, atol=TOL[dtype])


def _block_matrix_ref(block, p, x):
    """Product of the member gates' reference matrices embedded in the block's wires."""
    k = len(block.wires)
    m = np.eye(2**k, dtype=complex)
    for op in block.ops:
        g = (np.asarray(op.matrices[0].array) if op.name == "unitary"
             else gate_matrix_ref(op.name, [resolve(a, p, x) for a in op.angles]))
        pos = [block.wires.index(w) for w in op.wires]
        m = embed(g, pos, k) @ m
    return m


@given(c=circuits(max_qubits=5, max_ops=14), k=st.integers(1, 3))
def test_blocks_are_classified_and_valued_correctly(c, k):
    p, x = random_inputs(c, seed=5)
    blocks = fuse(c.ops, k)
    assert sum(len(b.ops) for b in blocks) == sum(op.name != "cut" for op, _ in flat_ops(c))
    for b in blocks:
        assert isinstance(b, Block) and len(b.wires) <= max(k, *(len(o.wires) for o in b.ops))
        want = _block_matrix_ref(b, p, x)
        got = block_apply_args(b, jnp.asarray(p), jnp.asarray(x), jnp.complex128)
        if b.kind == "diagonal":
            np.testing.assert_allclose(np.diag(got), want, atol=1e-12)
        elif b.kind == "permutation":
            mono = np.zeros_like(want)
            phases = np.ones(len(b.perm)) if got is None else got
            mono[np.arange(len(b.perm)), b.perm] = phases
            np.testing.assert_allclose(mono, want, atol=1e-12)
        else:
            np.testing.assert_allclose(np.asarray(got), want, atol=1e-12)


def test_classification_of_known_blocks():
    c = qjr.Circuit(3).rz(0, qjr.param(0)).cz(0, 1).rzz(1, 2, 0.3)
    assert [b.kind for b in fuse(c.ops, 3)] == ["diagonal"]
    c = qjr.Circuit(3).cnot(0, 1).x(1).swap(1, 2).cz(0, 2).s(2)
    assert [b.kind for b in fuse(c.ops, 3)] == ["permutation"]
    c = qjr.Circuit(2).ry(0, qjr.param(0)).rz(0, qjr.param(1)).cnot(0, 1).ry(1, 0.2)
    assert [(b.kind, b.wires) for b in fuse(c.ops, 2)] == [("dense", (0, 1))]
    # k=1: only same-wire runs merge; the CNOT stays a permutation
    assert [b.kind for b in fuse(c.ops, 1)] == ["dense", "permutation", "dense"]


def test_blocks_never_move_across_a_later_gate_on_their_wires():
    # h(2) may join the ccx block on (1,2,4), but iswap(4,1) must not: wire 1 was used
    # later by the ccx on (1,3,0).
    c = qjr.Circuit(5).ccx(2, 4, 1).ccx(1, 3, 0).h(1).h(2).cnot(2, 0).iswap(4, 1)
    got = np.asarray(_state(c, jnp.zeros(0), jnp.zeros(0), jnp.complex128, 3))
    np.testing.assert_allclose(got, statevector_ref(c), atol=1e-12)


@pytest.mark.parametrize("wires", [(0,), (2, 0), (1, 3, 2)])
def test_permutation_kernel_matches_dense(rng, wires):
    n, k = 4, len(wires)
    u = np.eye(2**k)[rng.permutation(2**k)] * np.exp(1j * rng.normal(size=2**k))[:, None]
    perm, phases = monomial(u)
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    for ph in (phases, jnp.asarray(phases)):
        got = apply_permutation(jnp.asarray(psi).reshape((2,) * n), perm, ph, wires)
        np.testing.assert_allclose(np.asarray(got).reshape(-1), embed(u, wires, n) @ psi,
                                   atol=1e-12)
    assert monomial(random_unitary(rng, 4)) is None


@pytest.mark.slow
def test_gradients_unchanged_by_fusion(rng):
    block = qjr.Circuit(4).ry(0, qjr.param(0)).rz(0, qjr.param(1)).cnot(0, 1).crx(
        1, 2, qjr.param(2)).rx(3, qjr.inp(0) * 0.7).u3(2, qjr.param(3), 0.2, qjr.param(0))
    c = qjr.Circuit(4).h(1) + qjr.Circuit.repeat(block, 3)
    obs = qjr.Z(0) @ qjr.X(2) + 0.5 * qjr.Y(3)
    p, x = jnp.asarray(rng.uniform(-2, 2, c.n_params)), jnp.asarray(rng.uniform(-2, 2, 1))

    def f(p, x, k):
        t = final_tensor(c, p, x, jnp.complex128, False, fuse_qubits=k)
        return jnp.real(jnp.vdot(t.reshape(-1), jnp.asarray(observable_matrix(obs, 4)) @ t.reshape(-1)))

    grads = [jax.grad(f, argnums=(0, 1))(p, x, k) for k in (0, 2, 3)]
    for g in grads[1:]:
        np.testing.assert_allclose(g[0], grads[0][0], atol=1e-10)
        np.testing.assert_allclose(g[1], grads[0][1], atol=1e-10)
    # and the value itself against the reference
    assert abs(f(p, x, 2) - expval_ref(c, obs, np.asarray(p), np.asarray(x))) < 1e-10


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
def test_block_builder_mixed_sources_values_and_hessian(dtype, rng):
    """Blocks mixing param/inp/constant angles (non-contiguous indices), trig-form gates,
    a gate without one (u3) and constant runs: block operands against the reference, and
    second derivatives of the fused circuit against the unfused one."""
    c = (qjr.Circuit(3).ry(0, qjr.param(3)).rz(2, qjr.inp(1) * 0.5 + 0.2)
         .u3(0, qjr.param(0), 0.1, qjr.inp(0)).cnot(0, 2).h(2).crx(2, 0, qjr.param(3) * -1.5)
         .phase(1, qjr.param(1)).rzz(1, 2, qjr.inp(0)).cz(1, 2).crz(2, 1, qjr.param(2)))
    p, x = rng.uniform(-2, 2, c.n_params), rng.uniform(-2, 2, c.n_inputs)
    blocks = fuse(c.ops, 2)
    assert {b.kind for b in blocks} == {"dense", "diagonal"}
    for b in blocks:
        got = np.asarray(block_apply_args(b, jnp.asarray(p), jnp.asarray(x), dtype))
        want = _block_matrix_ref(b, p, x)
        np.testing.assert_allclose(np.diag(got) if b.kind == "diagonal" else got, want,
                                   atol=TOL[dtype])

    real = jnp.finfo(dtype).dtype

    @partial(jax.jit, static_argnums=2)
    def hess(p, x, k):
        def f(p):
            t = final_tensor(c, p, x, dtype, False, fuse_qubits=k).reshape(-1)
            return jnp.sum(jnp.abs(t) ** 2 * jnp.arange(1, 9, dtype=real))
        return jax.hessian(f)(p)

    p, x = jnp.asarray(p, real), jnp.asarray(x, real)
    np.testing.assert_allclose(np.asarray(hess(p, x, 2)), np.asarray(hess(p, x, 0)),
                               atol=100 * TOL[dtype])


@pytest.mark.parametrize("dtype", [jnp.complex128, jnp.complex64])
def test_product_prefix_state_and_gradients(dtype, rng):
    """The 1-wire gates before any multi-wire gate on their wire (dense, diagonal,
    constant, input- and parameter-driven, a 1-wire ``unitary``) prepare a product state;
    gates after an entangler on their wire, and everything after a ``Repeat``, stay in
    order. State and parameter gradient against the reference."""
    from qjaxrob.lower.pipeline import product_prefix
    u = random_unitary(rng, 2)
    c = (qjr.Circuit(4).ry(0, qjr.inp(0)).rz(0, qjr.param(0)).h(1).cnot(1, 2)
         .rx(3, qjr.param(1)).unitary(u, 0).phase(2, qjr.param(2)).t(3).ry(1, qjr.inp(1)))
    c = c + qjr.Circuit.repeat(qjr.Circuit(4).ry(3, qjr.param(0)), 2, param_offset=3)
    c = c + qjr.Circuit(4).rx(0, qjr.param(5))
    prefix, rest = product_prefix(c.ops)
    names = [op.name for op in prefix]
    assert names == ["ry", "rz", "h", "rx", "unitary", "t"]
    assert [getattr(op, "name", None) for op in rest][:3] == ["cnot", "phase", "ry"]
    p, x = rng.uniform(-np.pi, np.pi, 6), rng.uniform(-np.pi, np.pi, 2)
    got = np.asarray(_state(c, jnp.asarray(p), jnp.asarray(x), dtype, 2))
    np.testing.assert_allclose(got, statevector_ref(c, p, x), atol=TOL[dtype])
    if dtype == jnp.complex128:
        obs = qjr.Z(0) @ qjr.X(3) + qjr.Y(1)
        f = lambda v, w: qjr.expval(c, obs, v, w, dtype=dtype)
        g = np.asarray(jax.grad(f, argnums=(0, 1))(jnp.asarray(p), jnp.asarray(x))[1])
        ref = finite_diff(lambda w: expval_ref(c, obs, p, w), x)
        np.testing.assert_allclose(g, ref, atol=1e-7)


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
@pytest.mark.parametrize("shapes", [((4,), (4, 16)), ((2, 2), (2, 2)), ((4, 4), (4, 4)),
                                    ((8, 8), (8, 8)), ((16, 16), (16, 16)), ((32,), (32, 16)),
                                    ((3, 5), (5, 7))])
def test_small_product_equals_numpy_matmul_values_and_derivatives(dtype, shapes, rng):
    """``small_product`` (broadcast form up to ``SMALL_PRODUCT`` multiply-adds, ``@`` above)
    against NumPy's product, under ``jit`` and ``vmap``, and its derivative in ``a``
    against the analytic one (``d(sum(w * (a @ b)))/da = w @ b^H`` for the real part)."""
    from qjaxrob.lower.tables import SMALL_PRODUCT, small_product

    sa, sb = shapes
    real = np.float32 if dtype == jnp.complex64 else np.float64
    a = (rng.normal(size=(3,) + sa) + 1j * rng.normal(size=(3,) + sa)).astype(dtype)
    b = (rng.normal(size=sb) + 1j * rng.normal(size=sb)).astype(dtype)
    rows = 1 if len(sa) == 1 else sa[0]
    assert (rows * sb[0] * sb[1] <= SMALL_PRODUCT) == (shapes != ((16, 16), (16, 16)))
    got = jax.jit(jax.vmap(small_product, (0, None)))(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(got, a @ b, rtol=20 * TOL[dtype], atol=20 * TOL[dtype])
    w = rng.normal(size=(sa[0], sb[1]) if len(sa) == 2 else (sb[1],)).astype(real)
    grad = jax.grad(lambda m: jnp.sum(w * small_product(m, jnp.asarray(b)).real))(
        jnp.asarray(a[0]))
    want = np.conj(w @ np.conj(b).T) if len(sa) == 2 else np.conj(np.conj(b) @ w)
    np.testing.assert_allclose(grad, want, rtol=20 * TOL[dtype], atol=20 * TOL[dtype])
