"""Angle expressions beyond affine (``qjaxrob.ir.expressions``, ``qjaxrob.lower.angles``):
building and folding, values against the dense reference (expressions evaluated there by
an independent NumPy walk), gradients (backprop and adjoint, w.r.t. params and x) against
finite differences in both dtypes, vmap, Repeat blocks with expressions (nested too),
finite-shot gradients, and the consumers that need affine angles refusing clearly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TOL, finite_diff
from reference import expval_ref, statevector_ref

import qjaxrob as qjr
from qjaxrob.errors import ParameterError, QjrTypeError
from qjaxrob.ir.circuit import Repeat
from qjaxrob.lower.angles import rewrite

DTYPES = [jnp.complex64, jnp.complex128]
OBS = qjr.Z(0) + 0.5 * qjr.X(1) @ qjr.Y(0)


def _leaf(rng, n_params, n_inputs):
    k = rng.integers(3)
    if k == 0:
        return qjr.param(int(rng.integers(n_params))) * rng.uniform(-2, 2) + rng.uniform(-1, 1)
    if k == 1:
        return qjr.inp(int(rng.integers(n_inputs))) * rng.uniform(-2, 2) + rng.uniform(-1, 1)
    return qjr.param(int(rng.integers(n_params)))


def random_expr(rng, n_params=3, n_inputs=2, depth=2):
    """A random non-affine expression, finite and smooth on all real inputs."""
    a = _leaf(rng, n_params, n_inputs) if depth == 0 else random_expr(rng, n_params, n_inputs,
                                                                     depth - 1)
    b = _leaf(rng, n_params, n_inputs)
    forms = [
        lambda: a * b,
        lambda: qjr.sin(a) + b * 0.5,
        lambda: np.cos(a) * b,
        lambda: qjr.exp(qjr.sin(a)) - b,
        lambda: a / (2.5 + qjr.cos(b)),
        lambda: a ** 2 / 3,
        lambda: qjr.sqrt(1.0 + b ** 2) * qjr.tanh(a),
        lambda: qjr.log(2.0 + qjr.sin(a)) * qjr.arctan(b),
        lambda: 2 * (np.pi - a) * (np.pi - b),
    ]
    out = forms[int(rng.integers(len(forms)))]()
    return out if isinstance(out, qjr.Expr) else out * b


ROT = ("rx", "ry", "rz", "phase", "crx", "cry", "crz", "rxx", "ryy", "rzz", "u3")


def random_circuit(rng, n, n_ops=10, n_params=3, n_inputs=2, repeat=True):
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.h(q)
    for _ in range(n_ops):
        name = ROT[int(rng.integers(len(ROT)))] if rng.random() < 0.8 else "cnot"
        spec = qjr.GATES[name]
        if spec.n_wires > n:
            continue
        wires = tuple(int(w) for w in rng.permutation(n)[:spec.n_wires])
        angles = [random_expr(rng, n_params, n_inputs) if rng.random() < 0.7
                  else _leaf(rng, n_params, n_inputs) for _ in range(spec.n_angles)]
        c = c.gate(name, wires, *angles)
    if repeat:
        block = qjr.Circuit(n).ry(0, qjr.param(0) * qjr.inp(0)).rzz(0, n - 1, qjr.sin(qjr.param(1)))
        c = c + qjr.Circuit.repeat(block, 3, param_offset=n_params)
    return c


def _args(c, rng):
    return rng.normal(size=c.n_params), rng.normal(size=c.n_inputs)


# ---- building -----------------------------------------------------------------------------
def test_affine_combinations_stay_angles():
    p, x = qjr.param(0), qjr.inp(1)
    assert isinstance(p * 2.0 + 1, qjr.Angle)
    assert isinstance(2.0 * p - 1, qjr.Angle)
    assert p + p == p * 2.0
    assert isinstance(p - p, qjr.Angle)
    assert isinstance(p / 4, qjr.Angle)
    for e in (p * x, p + x, p / x, 1 / p, p ** 2, 2 ** p, np.sin(p), qjr.cos(x) * p):
        assert isinstance(e, qjr.Expr) and e.source == "expr"


def test_constants_fold_and_expressions_hash_by_value():
    assert qjr.sin(0.5) == pytest.approx(np.sin(0.5))
    assert qjr.sqrt(4.0) == 2.0 and qjr.param(0) * 0.0 + 2.0 ** 2 == qjr.param(0) * 0.0 + 4.0
    e1 = 2 * (np.pi - qjr.inp(0)) * (np.pi - qjr.inp(1))
    e2 = 2 * (np.pi - qjr.inp(0)) * (np.pi - qjr.inp(1))
    assert e1 == e2 and hash(e1) == hash(e2)
    c1, c2 = qjr.Circuit(2).rz(0, e1), qjr.Circuit(2).rz(0, e2)
    assert c1 == c2 and hash(c1) == hash(c2)
    assert c1 != qjr.Circuit(2).rz(0, e1 + 0.1)
    assert str(qjr.param(0) * qjr.inp(1)) == "params[0] * x[1]"


def test_indices_and_shifts_see_through_expressions():
    c = qjr.Circuit(2).rz(0, qjr.sin(qjr.param(4)) * qjr.inp(2)).rx(1, qjr.param(1))
    assert (c.n_params, c.n_inputs) == (5, 3)
    shifted = c.shift_params(3)
    assert shifted.n_params == 8
    assert shifted.ops[0].angles[0] == qjr.sin(qjr.param(7)) * qjr.inp(2)
    r = qjr.Circuit.repeat(c, 2, param_offset=1)
    assert r.n_params == 1 + 2 * 5
    flat = r.unroll()
    assert flat.ops[2].angles[0] == qjr.sin(qjr.param(1 + 5 + 4)) * qjr.inp(2)


def test_bad_expressions_raise_naming_the_value():
    with pytest.raises(ParameterError, match="division by zero"):
        qjr.param(0) / (qjr.inp(0) * 0.0)
    with pytest.raises(ParameterError, match="division by zero"):
        qjr.sin(qjr.param(0)) / 0.0
    with pytest.raises(ParameterError, match=r"log\(-1.0\)"):
        qjr.log(-1.0)
    with pytest.raises(QjrTypeError, match="'text'"):
        qjr.sin(qjr.param(0)) + "text"
    with pytest.raises(QjrTypeError, match="the argument of exp"):
        qjr.exp([1.0])
    with pytest.raises(QjrTypeError, match="numpy.floor"):
        np.floor(qjr.param(0) * qjr.inp(0))
    with pytest.raises(ParameterError, match="must be finite"):
        qjr.param(0) * qjr.inp(0) + float("nan")
    with pytest.raises(ParameterError, match=r"noise level .*params\[0\] \* x\[0\]"):
        qjr.Circuit(1).depolarizing(0, qjr.param(0) * qjr.inp(0))


# ---- values ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,seed", [(1, 0), (2, 1), (3, 2)])
def test_statevector_and_expval_match_reference(n, seed, dtype):
    rng = np.random.default_rng(seed)
    c = random_circuit(rng, n, n_ops=6, repeat=n > 1)
    real = np.float64 if dtype == jnp.complex128 else np.float32
    obs = OBS if n > 1 else qjr.Z(0)
    for _ in range(2):
        p, x = _args(c, rng)
        sv = np.asarray(qjr.statevector(c, p.astype(real), x.astype(real), dtype=dtype))
        np.testing.assert_allclose(sv, statevector_ref(c, p, x), atol=TOL[dtype] * 10)
        val = qjr.expval(c, obs, p.astype(real), x.astype(real), dtype=dtype, diff="adjoint")
        np.testing.assert_allclose(val, expval_ref(c, obs, p, x), atol=TOL[dtype] * 10)


def test_density_matrix_and_probs_read_expressions():
    rng = np.random.default_rng(4)
    c = random_circuit(rng, 2, n_ops=4, repeat=False)
    p, x = _args(c, rng)
    sv = statevector_ref(c, p, x)
    np.testing.assert_allclose(qjr.density_matrix(c, p, x, dtype=jnp.complex128),
                               np.outer(sv, sv.conj()), atol=1e-10)
    np.testing.assert_allclose(qjr.probs(c, p, x, dtype=jnp.complex128), np.abs(sv) ** 2,
                               atol=1e-10)


def test_repeat_with_expressions_stays_one_scan_and_reads_its_own_params():
    """Each repetition evaluates the block's expressions on its own parameters; the
    rewritten circuit keeps the Repeat (one lax.scan) and the top-level layout."""
    rng = np.random.default_rng(7)
    inner = qjr.Circuit(3).rx(2, qjr.param(0) * qjr.param(1) + qjr.inp(1))
    block = (qjr.Circuit(3).ry(0, qjr.sin(qjr.param(0)) * qjr.inp(0)).cnot(0, 1)
             .rz(1, qjr.param(1)).crz(1, 2, qjr.param(0) * qjr.inp(0))
             .rzz(0, 2, qjr.exp(qjr.inp(1) * 0.3)) + qjr.Circuit.repeat(inner, 2, param_offset=2))
    c = (qjr.Circuit(3).rx(0, qjr.param(0) * qjr.param(1)).h(1).h(2)
         + qjr.Circuit.repeat(block, 4, param_offset=2) + qjr.Circuit(3).ry(2, qjr.param(1)))
    affine, plan = rewrite(c)
    assert isinstance(affine.ops[3], Repeat) and affine.ops[3].times == 4
    assert not any(a.source == "expr" for op in affine.unroll().ops for a in op.angles)
    assert affine.n_params == plan.size
    assert rewrite(qjr.Circuit(1).rx(0, qjr.param(0))) == (qjr.Circuit(1).rx(0, qjr.param(0)),
                                                          None)
    for _ in range(2):
        p, x = _args(c, rng)
        np.testing.assert_allclose(qjr.statevector(c, p, x, dtype=jnp.complex128),
                                   statevector_ref(c, p, x), atol=1e-10)
        np.testing.assert_allclose(qjr.statevector(c.unroll(), p, x, dtype=jnp.complex128),
                                   statevector_ref(c, p, x), atol=1e-10)


def test_repeated_expression_gets_one_slot():
    e = qjr.param(0) * qjr.inp(0)
    c = qjr.Circuit(2).rx(0, e).ry(1, e).rz(0, qjr.sin(qjr.param(0)))
    affine, plan = rewrite(c)
    assert plan.size == 1 + 2
    assert affine.ops[0].angles[0] == affine.ops[1].angles[0] == qjr.param(1)


# ---- gradients ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,rtol", [(jnp.complex128, 1e-6), (jnp.complex64, 2e-3)])
def test_gradients_match_finite_differences(dtype, rtol):
    rng = np.random.default_rng(10)
    c = random_circuit(rng, 2, n_ops=5)
    real = np.float64 if dtype == jnp.complex128 else np.float32
    p, x = (v.astype(real) for v in _args(c, rng))

    def f(p, x, diff="backprop"):
        return qjr.expval(c, OBS, p, x, dtype=dtype, diff=diff)

    ref = lambda p, x: expval_ref(c, OBS, p, x)   # noqa: E731
    fd_p = finite_diff(lambda v: ref(v, x), p)
    fd_x = finite_diff(lambda v: ref(p, v), x)
    scale = max(1.0, np.abs(fd_p).max(), np.abs(fd_x).max())
    for diff in ("backprop", "adjoint"):
        gp, gx = jax.grad(f, argnums=(0, 1))(p, x, diff)
        np.testing.assert_allclose(gp, fd_p, atol=rtol * scale)
        np.testing.assert_allclose(gx, fd_x, atol=rtol * scale)


def test_vmap_over_params_and_inputs_matches_a_loop():
    rng = np.random.default_rng(3)
    c = random_circuit(rng, 2, n_ops=4)
    ps = rng.normal(size=(4, c.n_params))
    xs = rng.normal(size=(4, c.n_inputs))
    f = jax.vmap(lambda p, x: qjr.expval(c, OBS, p, x, dtype=jnp.complex128))
    loop = [expval_ref(c, OBS, p, x) for p, x in zip(ps, xs)]
    np.testing.assert_allclose(f(ps, xs), loop, atol=1e-10)
    g = jax.vmap(jax.grad(lambda p, x: qjr.expval(c, OBS, p, x, dtype=jnp.complex128,
                                                  diff="adjoint")), in_axes=(None, 0))
    gb = jax.vmap(jax.grad(lambda p, x: qjr.expval(c, OBS, p, x, dtype=jnp.complex128)),
                  in_axes=(None, 0))
    np.testing.assert_allclose(g(ps[0], xs), gb(ps[0], xs), atol=1e-10)


@pytest.mark.slow
def test_shot_gradients_are_unbiased_through_expressions():
    """Parameter-shift shot gradients (taken w.r.t. the augmented parameters) chained
    through the expressions: the mean over 32 keys lies within 5 standard errors."""
    rng = np.random.default_rng(5)
    c = (qjr.Circuit(2).h(0).ry(0, qjr.param(0) * qjr.inp(0)).cnot(0, 1)
         .rx(1, qjr.sin(qjr.param(1)) + qjr.param(0)).crz(0, 1, qjr.param(1) ** 2))
    p, x = rng.normal(size=2), rng.normal(size=1)
    obs = qjr.Z(1) + 0.5 * qjr.X(0)

    def shot(key):
        return jax.grad(lambda p, x: qjr.expval(c, obs, p, x, shots=2000, key=key,
                                                dtype=jnp.complex128), argnums=(0, 1))(p, x)

    gp, gx = jax.vmap(shot)(jax.random.split(jax.random.key(0), 32))
    exact_p, exact_x = jax.grad(lambda p, x: qjr.expval(c, obs, p, x, dtype=jnp.complex128),
                                argnums=(0, 1))(p, x)
    for g, exact in ((gp, exact_p), (gx, exact_x)):
        g = np.asarray(g)
        se = g.std(axis=0, ddof=1) / np.sqrt(g.shape[0])
        assert np.all(se > 0)
        assert np.all(np.abs(g.mean(axis=0) - exact) < 5 * se + 1e-9), (g.mean(0), exact, se)


# ---- consumers that need affine angles ------------------------------------------------------
def test_cutting_refuses_expression_angles_by_name():
    c = qjr.Circuit(2).ry(0, qjr.param(0) * qjr.inp(0)).cnot(0, 1, cut=True)
    with pytest.raises(ParameterError, match=r"params\[0\] \* x\[0\]"):
        qjr.cutting.partition(c)


def test_affine_only_consumers_refuse_expressions_by_name():
    """Periodicity, the parameter-shift gradient bound and the circuit backdoor read an
    angle's affine scale: an expression raises instead of a bound it does not obey."""
    from qjaxrob.attacks.poisoning import CircuitBackdoor
    from qjaxrob.defenses.integrity import shift_bound
    from qjaxrob.qml.encodings import Encoding, encoding_period

    expr = qjr.inp(0) * qjr.inp(1)
    enc = Encoding("angle", 2, qjr.Circuit(2).rx(0, expr).rx(1, qjr.inp(1)))
    with pytest.raises(ParameterError, match=r"x\[0\] \* x\[1\]"):
        encoding_period(enc)
    with pytest.raises(ParameterError, match=r"x\[0\] \* x\[1\]"):
        CircuitBackdoor(enc, wires=(0,), target=1)
    c = qjr.Circuit(2).ry(0, qjr.sin(qjr.param(0))).cnot(0, 1)
    with pytest.raises(ParameterError, match=r"sin\(params\[0\]\)"):
        shift_bound(c, qjr.Z(1))
    # the affine part of the same checks is unchanged
    assert np.isfinite(encoding_period(Encoding("angle", 1, qjr.Circuit(1).rx(0, qjr.inp(0))))).all()
