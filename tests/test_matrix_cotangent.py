"""The matrix cotangent of ``slice_combine_p`` (``kernels.dense._matrix_cotangent``) against
NumPy: every formulation (batched GEMMs over a long tail, a Gram matrix for a short tail,
per-row outer products over a tail of 4-16, fused elementwise products) on grouped views, the reverse pass of ``apply_matrix`` with
unsorted wires (shared and per-example matrices under ``vmap``), and engine gradients
against finite differences of ``tests/reference.py``."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import finite_diff
from reference import expval_ref

import qjaxrob as qjr
from qjaxrob.kernels import dense

DTYPES = {jnp.complex64: 2e-5, jnp.complex128: 1e-12}  # relative tolerance

# Thresholds (_GEMM_MIN_TAIL, _GRAM_MAX_TAIL, _ROWS_TAILS) that force one formulation where
# the layout allows it: adjacent wires take the GEMM, (one matrix) the Gram matrix or (k <= 2)
# the per-row products, the rest products.
NO_ROWS = (1, 0)
FORMS = {"default": None, "gemm": (1, 0, NO_ROWS), "gram": (1 << 30, 1 << 30, NO_ROWS),
         "rows": (1 << 30, 0, (1, 1 << 30)), "products": (1 << 30, 0, NO_ROWS)}


def _rand(rng, shape, dtype):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)


def _reference(ct, x, k, shared):
    """``sum ct_r x_c`` with ``np.einsum`` on the grouped views, shape ``(Bm, 2**k, 2**k)``."""
    groups, rows, cols = "abcd"[: k + 1], "efg"[:k], "hij"[:k]

    def view(bits):
        return "z" + "".join(g + b for g, b in zip(groups, bits)) + groups[k]

    out = ("" if shared else "z") + rows + cols
    t = np.einsum(f"{view(rows)},{view(cols)}->{out}", ct.astype(complex), x.astype(complex))
    return t.reshape((1 if shared else x.shape[0], 2**k, 2**k))


def _close(got, want, rtol):
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=rtol * np.abs(want).max(), rtol=0)


def _wire_sets(n, k, rng):
    """Both ends, adjacent pairs at random places, and random spreads (sorted)."""
    sets = {tuple(range(k)), tuple(range(n - k, n))}
    start = int(rng.integers(0, n - k + 1))
    sets.add(tuple(range(start, start + k)))
    for _ in range(2):
        sets.add(tuple(sorted(rng.choice(n, k, replace=False).tolist())))
    return sorted(sets)


@pytest.fixture
def form(request, monkeypatch):
    limits = FORMS[request.param]
    if limits is not None:
        monkeypatch.setattr(dense, "_GEMM_MIN_TAIL", limits[0])
        monkeypatch.setattr(dense, "_GRAM_MAX_TAIL", limits[1])
        monkeypatch.setattr(dense, "_ROWS_TAILS", limits[2])
    return request.param


@pytest.mark.parametrize(("form", "dtype"), [
    ("default", jnp.complex64), ("gemm", jnp.complex64), ("rows", jnp.complex64),
    *((f, jnp.complex128) for f in FORMS)], indirect=["form"])
def test_matrix_cotangent_matches_einsum_on_views(form, dtype):
    rng = np.random.default_rng(list(FORMS).index(form) + 10 * (dtype == jnp.complex64))
    # A fresh function per test: jit's cache is keyed on the function, not the thresholds.
    fn = jax.jit(lambda c, x, k, shared: dense._matrix_cotangent(c, x, k, shared),
                 static_argnums=(2, 3))
    checked = 0
    for k, n in itertools.product((1, 2, 3), (3, 5, 8)):
        for wires in _wire_sets(n, k, rng):
            adjacent = wires == tuple(range(wires[0], wires[0] + k))
            if form in ("gemm", "gram", "rows") and not adjacent:
                continue
            for batch, shared in ((3, True), (2, False)):
                shape = (batch,) + dense.grouped_shape(n, wires)
                ct, x = _rand(rng, shape, dtype), _rand(rng, shape, dtype)
                got = np.asarray(fn(jnp.asarray(ct), jnp.asarray(x), k, shared))
                assert got.dtype == dtype
                _close(got, _reference(ct, x, k, shared), DTYPES[dtype])
                checked += 1
    assert checked >= 25


def _vjp_reference(state, ct, wires):
    """``d/dM sum(ct * (M x))`` (no conjugation, JAX's convention): ``ct_w x_w^T`` with the
    gate's wires moved to the front in the order given."""
    k = len(wires)
    front = tuple(range(k))
    x = np.moveaxis(state, wires, front).reshape(2**k, -1)
    c = np.moveaxis(ct, wires, front).reshape(2**k, -1)
    return c @ x.T


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_apply_matrix_reverse_pass_unsorted_wires_shared_and_per_example(dtype):
    rng = np.random.default_rng(11)
    batch = 3
    for k, n in ((1, 4), (2, 5), (3, 6), (2, 8)):
        for _ in range(2):
            wires = tuple(rng.choice(n, k, replace=False).tolist())
            states = _rand(rng, (batch,) + (2,) * n, dtype)
            cts = _rand(rng, (batch,) + (2,) * n, dtype)
            mats = _rand(rng, (batch, 2**k, 2**k), dtype)

            def loss(m, s, c, wires=wires):
                return jnp.sum(c * dense.apply_matrix(s, m, wires))

            # One matrix for the whole batch: the cotangent sums over the examples.
            shared = jax.jit(jax.grad(
                lambda m, s, c: jnp.sum(jax.vmap(loss, (None, 0, 0))(m, s, c)),
                holomorphic=True))(jnp.asarray(mats[0]), states, cts)
            want = sum(_vjp_reference(states[b], cts[b], wires) for b in range(batch))
            _close(np.asarray(shared), want, DTYPES[dtype])
            # One matrix per example: the reverse pass of the vmapped kernel, and a vmapped
            # reverse pass.
            want = np.stack([_vjp_reference(states[b], cts[b], wires) for b in range(batch)])
            per = jax.jit(jax.grad(
                lambda m, s, c: jnp.sum(jax.vmap(loss)(m, s, c)),
                holomorphic=True))(mats, states, cts)
            _close(np.asarray(per), want, DTYPES[dtype])
            per = jax.jit(jax.vmap(jax.grad(loss, holomorphic=True)))(mats, states, cts)
            _close(np.asarray(per), want, DTYPES[dtype])


def _circuit(n):
    """Generic two-qubit blocks on adjacent, far and wrapped pairs (fused into k = 2, 3
    matrices), rotations, and an input."""
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.ry(q, qjr.param(q)).rz(q, qjr.param(n + q))
    for q in range(n):
        c = c.cnot(q, (q + 1) % n)
    c = c.rxx(0, n - 1, qjr.param(2 * n)).crz(n // 2, 1, qjr.param(2 * n + 1))
    return c.ry(n - 2, qjr.inp(0)).u3(1, qjr.param(2 * n + 2), 0.3, qjr.param(2 * n + 3))


def test_engine_backprop_gradient_matches_finite_differences():
    n = 5
    c = _circuit(n)
    obs = qjr.Z(0) @ qjr.Z(n - 1) + 0.5 * qjr.X(1)
    rng = np.random.default_rng(n)
    p, x = rng.uniform(-np.pi, np.pi, c.n_params), rng.uniform(-1, 1, c.n_inputs)
    dirs = rng.normal(size=(4, p.size))  # directional central differences of the reference
    want = finite_diff(lambda t: expval_ref(c, obs, p + t @ dirs, x), np.zeros(4))
    for dtype, tol in ((jnp.complex128, 1e-8), (jnp.complex64, 2e-4)):
        real = jnp.float64 if dtype == jnp.complex128 else jnp.float32
        def f(q, real=real, dtype=dtype):
            return qjr.expval(c, obs, q, x.astype(real), dtype=dtype, diff="backprop")

        got = jax.jit(jax.grad(f))(p.astype(real))
        np.testing.assert_allclose(dirs @ np.asarray(got), want, atol=tol)


def test_engine_batched_gradient_shared_parameters_matches_finite_differences():
    n, batch = 4, 2
    encode = qjr.Circuit(n, tuple(qjr.Circuit(n).ry(q, qjr.inp(q)).ops[0] for q in range(n)))
    c = encode + _circuit(n)
    obs = qjr.Z(2)
    rng = np.random.default_rng(3)
    p, xs = rng.uniform(-np.pi, np.pi, c.n_params), rng.uniform(-1, 1, (batch, c.n_inputs))

    def mean(q):
        vals = jax.vmap(lambda x: qjr.expval(c, obs, q, x, dtype=jnp.complex128))(xs)
        return jnp.mean(vals)

    got = np.asarray(jax.jit(jax.grad(mean))(p))
    # Directional central differences of the reference along random directions.
    dirs = rng.normal(size=(3, p.size))
    want = finite_diff(lambda t: np.mean([expval_ref(c, obs, p + t @ dirs, x) for x in xs]),
                       np.zeros(3))
    np.testing.assert_allclose(dirs @ got, want, atol=1e-8)



@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cotangent_primitive_derivatives_and_vmap(shared, dtype):
    """``matrix_cotangent_p`` (what a reverse pass binds): its value, VJP, JVP, Hessian and
    ``vmap`` equal those of one ``jnp.einsum`` of the grouped views, so derivatives of a
    reverse pass (second order) are right."""
    rng = np.random.default_rng(3 + shared)
    k, shape = 2, (3,) + dense.grouped_shape(5, (1, 3))
    ct, x, tc, tx = (jnp.asarray(_rand(rng, shape, dtype)) for _ in range(4))
    g = jnp.asarray(_rand(rng, (1 if shared else 3, 4, 4), dtype))
    rtol = DTYPES[dtype] * 10

    def einsum(c, v):
        t = jnp.einsum("zaebfc,zagbhc->" + ("" if shared else "z") + "efgh", c, v)
        return t.reshape(g.shape)

    def prim(c, v):
        return dense.matrix_cotangent_p.bind(c, v, k=k, shared=shared)

    def close(a, b):
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
            _close(np.asarray(u), np.asarray(v), rtol)

    close(prim(ct, x), einsum(ct, x))
    close(jax.vjp(prim, ct, x)[1](g), jax.vjp(einsum, ct, x)[1](g))
    close(jax.jvp(prim, (ct, x), (tc, tx)), jax.jvp(einsum, (ct, x), (tc, tx)))

    def loss(fn):  # real angles phase each example of ct and x
        def f(theta):
            ph = jnp.exp(1j * theta).astype(dtype)[:, None, None, None, None, None]
            out = fn(ct * ph, x * ph ** 2)
            return jnp.sum(jnp.real(out * g)) + jnp.sum(jnp.abs(out + g) ** 2)
        return f

    theta = jnp.asarray(rng.uniform(-1, 1, 3), ct.real.dtype)
    close(jax.hessian(loss(prim))(theta), jax.hessian(loss(einsum))(theta))
    cs, xs = jnp.stack([ct, 2 * ct]), jnp.stack([x, -x])
    close(jax.vmap(prim)(cs, xs), jax.vmap(einsum)(cs, xs))
    close(jax.vmap(prim, (None, 0))(ct, xs), jax.vmap(einsum, (None, 0))(ct, xs))
