"""Pallas kernels (kernels/pallas.py): interpret mode against the dense reference, their
batching rule and primitive use, and the Triton lowering (to Triton IR, on CPU) that a GPU
backend runs. States are tiny (interpret mode is slow); lowering uses abstract n=26 shapes.
Derivatives of every order: tests/test_kernel_select.py (what ``auto`` may select) and the
whole statevector path there."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import random_unitary
from qjaxrob.kernels import dense, pallas, structured
from reference import embed

N = 4
MATRIX_WIRES = [(0,), (3,), (1, 3), (3, 0), (2, 0, 3)]
DIAG_WIRES = [(2,), (3, 1), (0, 3, 1)]
# interpret mode compiles slowly for wide kernels (k=3: ~4 s, k=4: ~20 s): the 4-qubit
# kernel is checked through its Triton lowering below, the same code at another width.


def _state(rng, n=N):
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    return psi / np.linalg.norm(psi)


def _diag(rng, k):
    return np.exp(1j * rng.uniform(0, 2 * np.pi, 2**k))


def _check_kernels(rng, dtype, mw, dw, tol):
    """The matrix kernels on wires ``mw`` and diagonal kernels on ``dw`` in one fresh jit
    (fresh, so module constants such as ``BLOCK`` are read again; compiled at XLA
    optimization level 0, which halves interpret-mode compile time), against the dense
    reference."""
    psi = _state(rng)
    mats = [random_unitary(rng, 2 ** len(w)) for w in mw]
    diags = [_diag(rng, len(w)) for w in dw]
    want = [embed(m, w, N) @ psi for m, w in zip(mats, mw)]
    want += [np.diag(embed(np.diag(d), w, N)) * psi for d, w in zip(diags, dw)]

    def run(psi, mats, diags):
        s = psi.reshape((2,) * N)
        out = [pallas.apply_matrix(s, m, w) for m, w in zip(mats, mw)]
        out += [pallas.apply_diagonal(s, d, w) for d, w in zip(diags, dw)]
        return [o.reshape(-1) for o in out]

    cast = lambda a: jnp.asarray(a, dtype)
    args = (cast(psi), [cast(m) for m in mats], [cast(d) for d in diags])
    compiled = jax.jit(run).lower(*args).compile({"xla_backend_optimization_level": 0})
    got = compiled(*args)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g.dtype == dtype
        np.testing.assert_allclose(np.asarray(g), w, atol=tol)


def test_kernels_match_reference(rng):
    _check_kernels(rng, jnp.complex128, MATRIX_WIRES, DIAG_WIRES, 1e-12)


def test_single_precision(rng):
    _check_kernels(rng, jnp.complex64, [(3, 0)], [(2,)], 2e-6)


def test_small_blocks_tile_every_group(rng, monkeypatch):
    """BLOCK=4 forces many programs and tiles on several groups (index maps exercised)."""
    monkeypatch.setattr(pallas, "BLOCK", 4)
    _check_kernels(rng, jnp.complex128, [(0,), (3, 1)], [(2, 0)], 1e-12)


def test_wide_gates_fall_back_to_xla(rng):
    n, wires = 7, (6, 0, 2, 4, 1)
    psi = jnp.asarray(_state(rng, n)).reshape((2,) * n)
    u = jnp.asarray(random_unitary(rng, 32))
    jaxpr = str(jax.make_jaxpr(lambda s: pallas.apply_matrix(s, u, wires))(psi))
    assert "qjaxrob_pallas_apply" not in jaxpr
    np.testing.assert_allclose(pallas.apply_matrix(psi, u, wires),
                               dense.apply_matrix(psi, u, wires), atol=1e-12)


# ---- autodiff and vmap rules -----------------------------------------------------------
def _loss(kernels, state, theta, wires):
    """A real scalar through a matrix kernel and a diagonal kernel, both depending on
    ``theta`` and the state (so state and operand cotangents are both exercised)."""
    apply_matrix, apply_diagonal = kernels
    k = len(wires)
    a = jnp.asarray(np.arange(4**k).reshape(2**k, 2**k) % 5 - 2.0)
    m = jnp.cos(theta) * a + 1j * jnp.sin(2 * theta) * a.T
    s = apply_matrix(state * jnp.cos(theta), m, wires)
    s = apply_diagonal(s, jnp.exp(1j * theta * jnp.arange(2**k)), wires[::-1])
    weights = jnp.arange(s.size).reshape(s.shape) % 3
    return jnp.real(jnp.sum(weights * s * jnp.conj(s)))


@pytest.fixture(scope="module")
def grad_case():
    rng = np.random.default_rng(7)
    state = jnp.asarray(_state(rng, 3)).reshape((2,) * 3)
    return state, (2, 0)


XLA = (dense.apply_matrix, structured.apply_diagonal)
PALLAS = (pallas.apply_matrix, pallas.apply_diagonal)


def test_primitive_is_used_forward_and_backward(grad_case):
    state, wires = grad_case
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda t: _loss(PALLAS, state, t, wires)))(0.3))
    # forward: matrix + diagonal; reverse: both transposed onto the cotangent
    assert jaxpr.count("qjaxrob_pallas_apply") >= 4


# ---- the Triton lowering (what a CUDA backend compiles) ---------------------------------
def _lower_for_cuda(fn, *args):
    return jax.jit(fn).trace(*args).lower(lowering_platforms=("cuda",)).as_text()


STATE26 = jax.ShapeDtypeStruct((2,) * 26, jnp.complex64)


@pytest.mark.parametrize("wires", [(25,), (0,), (24, 3), (0, 12, 25), (25, 1, 13, 7)])
def test_triton_lowering_dense(wires):
    d = 2 ** len(wires)
    text = _lower_for_cuda(lambda s, m: pallas.apply_matrix(s, m, wires), STATE26,
                           jax.ShapeDtypeStruct((d, d), jnp.complex64))
    assert text.count("__gpu$xla.gpu.triton") == 1


def test_triton_lowering_diagonal_gradient_and_vmap():
    diag = jax.ShapeDtypeStruct((4,), jnp.complex64)
    loss = lambda s, d: jnp.sum(jnp.abs(pallas.apply_diagonal(s, d, (20, 2))) ** 2)
    text = _lower_for_cuda(jax.grad(loss, argnums=(0, 1)), STATE26, diag)
    assert text.count("__gpu$xla.gpu.triton") == 2  # forward and transposed kernel
    batch = jax.ShapeDtypeStruct((8,) + (2,) * 10, jnp.complex128)
    mats = jax.ShapeDtypeStruct((8, 2, 2), jnp.complex128)
    text = _lower_for_cuda(jax.vmap(lambda s, m: pallas.apply_matrix(s, m, (4,))), batch, mats)
    assert text.count("__gpu$xla.gpu.triton") == 1
