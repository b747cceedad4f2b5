"""Property test: random bad inputs to the public functions raise a ``qjaxrob.errors`` class
(never a raw JAX/XLA/NumPy error, never a process abort).

Each case draws one bad value for one argument of one public call and keeps every other
argument valid, so the error must come from that value's validation."""

import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qjaxrob as qjr
from qjaxrob import experiments, storage
from qjaxrob.errors import QjrError

C = qjr.Circuit(2).h(0).ry(1, qjr.param(0)).rx(0, qjr.inp(0)).cnot(0, 1)
P, X = np.array([0.3], np.float32), np.array([0.2], np.float32)
KEY = jax.random.key(0)
CC = qjr.cutting.partition(qjr.Circuit(3).h(0).cnot(0, 1).cut(1).cnot(1, 2))
VQC = qjr.qml.make_vqc(jax.random.key(0), 2, 2, layers=1)
XS = np.full((4, 2), 0.3)
GOOD_LINE = b'{"unit": {"size": 1}, "result": 0.5, "fingerprint": "f"}\n'


FILES = tempfile.TemporaryDirectory(prefix="qjr-bad-inputs-")  # removed at exit


def in_file(name: str, data: bytes) -> Path:
    """``data`` written to a fresh file ``name`` (a folder per call: examples never share)."""
    path = Path(tempfile.mkdtemp(dir=FILES.name)) / name
    path.write_bytes(data)
    return path

not_int = st.one_of(st.floats(allow_nan=True), st.text(max_size=3), st.none(),
                    st.just([0]), st.just(True), st.complex_numbers())
bad_wire = st.one_of(st.integers(max_value=-1), st.integers(min_value=2, max_value=10**9),
                     not_int.filter(lambda v: v is not None))
bad_angle = st.one_of(st.sampled_from([float("nan"), float("inf"), -float("inf")]),
                      st.text(max_size=3), st.none(), st.complex_numbers(min_magnitude=1),
                      st.just([0.1]), st.just("p"))
bad_vector = st.one_of(st.just(np.zeros(2)), st.just(np.zeros((1, 1))), st.just(np.zeros(0)),
                       st.just(np.array([1j])), st.text(max_size=3), st.just([[0.1]]))
bad_dtype = st.sampled_from([np.float32, np.float64, np.int32, "abc", None, 3, "complex256"])
bad_obs = st.one_of(st.text(max_size=3), st.integers(), st.just([]), st.just(qjr.Z(5)),
                    st.just(1j * qjr.Z(0)), st.just(float("nan") * qjr.X(0)), st.none())
bad_shots = st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=2), st.just(True),
                      st.integers(min_value=2**54, max_value=2**80))  # beyond any sampler's range


@st.composite
def bad_effects(draw):
    """Two 2x2 effects that are not a POVM: scaled (sum != I), NaN, non-Hermitian or
    non-PSD (a negative eigenvalue), each drawn with a random qubit basis."""
    theta = draw(st.floats(0.0, np.pi))
    u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    e0 = u @ np.diag([1.0, 0.0]) @ u.T
    kind = draw(st.sampled_from(["scaled", "nan", "nonhermitian", "negative"]))
    if kind == "scaled":
        s = draw(st.floats(1.01, 10.0) | st.floats(0.0, 0.99))
        return np.stack([s * e0, s * (np.eye(2) - e0)])
    if kind == "nan":
        return np.stack([e0 * np.nan, np.eye(2) - e0])
    if kind == "nonhermitian":
        skew = draw(st.floats(0.01, 1.0)) * np.array([[0, 1], [0, 0]])
        return np.stack([e0 + skew, np.eye(2) - e0 - skew])
    neg = draw(st.floats(0.01, 1.0))
    return np.stack([e0 * (1 + neg), np.eye(2) - e0 * (1 + neg)])
bad_key = st.one_of(st.integers(), st.text(max_size=3), st.just(np.zeros(3)),
                    st.just(np.zeros(2, np.float32)), st.floats())
bad_word = st.one_of(st.text(alphabet="ABCQW", min_size=1, max_size=3), st.just(""),
                     st.integers(), st.none())

CASES = {
    "Circuit(n)": (st.one_of(st.integers(max_value=0), st.integers(min_value=1025), not_int),
                   lambda v: qjr.Circuit(v)),
    "h(wire)": (bad_wire, lambda v: qjr.Circuit(2).h(v)),
    "cnot(0, wire)": (st.one_of(bad_wire, st.just(0)), lambda v: qjr.Circuit(2).cnot(0, v)),
    "rx(0, angle)": (bad_angle, lambda v: qjr.Circuit(2).rx(0, v)),
    "depolarizing(0, p)": (st.one_of(st.floats(min_value=1.0001), st.floats(max_value=-1e-9),
                                     bad_angle), lambda v: qjr.Circuit(2).depolarizing(0, v)),
    "unitary(U)": (st.sampled_from([np.ones((2, 2)), np.eye(3), np.eye(2) * 2, "U", None,
                                    np.full((2, 2), np.nan)]),
                   lambda v: qjr.Circuit(2).unitary(v, 0)),
    "repeat(times)": (st.one_of(st.integers(max_value=0), not_int),
                      lambda v: qjr.Circuit.repeat(qjr.Circuit(1).h(0), v)),
    "param(i)": (st.one_of(st.integers(max_value=-1), not_int), lambda v: qjr.param(v)),
    "angle * v": (st.sampled_from([float("nan"), float("inf"), "a", None, 1e308 * 1e10]),
                  lambda v: qjr.param(0) * 1e300 * v),
    "statevector(params)": (bad_vector, lambda v: qjr.statevector(C, v, X)),
    "density_matrix(x)": (bad_vector, lambda v: qjr.density_matrix(C, P, v)),
    "probs(dtype)": (bad_dtype, lambda v: qjr.probs(C, P, X, dtype=v)),
    "probs(wires)": (st.one_of(bad_wire.filter(lambda v: v != [0]), st.just((0, 0))),
                     lambda v: qjr.probs(C, P, X, wires=v)),
    "expval(obs)": (bad_obs, lambda v: qjr.expval(C, v, P, X)),
    "expval(diff)": (st.text(max_size=4), lambda v: qjr.expval(C, qjr.Z(0), P, X, diff=v)),
    "expval(shots)": (bad_shots, lambda v: qjr.expval(C, qjr.Z(0), P, X, shots=v, key=KEY)),
    "expval(key)": (bad_key, lambda v: qjr.expval(C, qjr.Z(0), P, X, shots=10, key=v)),
    "sample(key)": (bad_key, lambda v: qjr.sample(v, C, 4, P, X)),
    "sample(shots)": (bad_shots, lambda v: qjr.sample(KEY, C, v, P, X)),
    "pauli(word)": (bad_word, lambda v: qjr.pauli(v)),
    "noise.insert(p)": (st.one_of(st.floats(min_value=1.01), bad_angle),
                        lambda v: qjr.noise.insert(C, "bit_flip", p=v)),
    "cutting.partition(c)": (st.one_of(st.integers(), st.text(max_size=2), st.none()),
                             lambda v: qjr.cutting.partition(v)),
    "cutting.expval(obs)": (bad_obs, lambda v: qjr.cutting.expval(CC, v)),
    "cutting.expval(shots)": (st.one_of(bad_shots, st.just(1)),
                              lambda v: qjr.cutting.expval(CC, qjr.Z(0), shots=v, key=KEY)),
    "qml.evaluate(labels)": (
        st.one_of(st.integers(min_value=2), st.integers(max_value=-1),
                  st.floats(0.01, 0.99)).map(lambda v: np.full(4, v)) | st.just(np.zeros((4, 1))),
        lambda v: qjr.qml.evaluate(VQC, XS, v)),
    "qdp.kappa(effects)": (bad_effects(), lambda v: qjr.defenses.qdp.kappa(v)),
    "channel_trace_radius(effects)": (
        bad_effects(), lambda v: qjr.defenses.certify.channel_trace_radius(v, np.array([0.7, 0.3]))),
    "read_checkpoint(bytes)": (st.binary(max_size=600),
                               lambda v: storage.read_checkpoint(in_file("c.npz", v), {})),
    "load_results(line)": (  # a damaged, non-record or foreign line before a good one
        st.one_of(st.binary(max_size=60), st.sampled_from([b"{}", b"[]", b'{"unit": 1}',
                                                           GOOD_LINE.replace(b'"f"', b'"g"')])),
        lambda v: experiments.load_results(
            in_file("results.jsonl", v.replace(b"\n", b" ") + b"\n" + GOOD_LINE).parent,
            fingerprint="f")),
}


@st.composite
def bad_calls(draw):
    name = draw(st.sampled_from(sorted(CASES)))
    values, call = CASES[name]
    return name, draw(values), call


@settings(max_examples=150)
@given(bad_calls())
def test_bad_inputs_raise_qjaxrob_errors(case):
    _, value, call = case
    with pytest.raises(QjrError):
        call(value)


def test_every_case_is_drawn_from_its_own_strategy():
    # sanity: each case's valid counterpart works, so the error above comes from the bad value
    assert qjr.Circuit(2).h(1).cnot(0, 1).rx(0, 0.1).depolarizing(0, 0.5).n_qubits == 2
    assert qjr.expval(C, qjr.Z(0), P, X).shape == ()
    assert qjr.sample(KEY, C, 4, P, X).shape == (4, 2)
    assert qjr.expval(C, qjr.Z(0), P, X, shots=10, key=KEY).dtype == jnp.float32
    assert float(qjr.qml.evaluate(VQC, XS, np.ones(4, int))[1]) in (0.0, 1.0)
    folder = in_file("results.jsonl", GOOD_LINE).parent
    assert len(experiments.load_results(folder, fingerprint="f")) == 1
    storage.write_checkpoint(folder / "c.npz", {})
    assert storage.read_checkpoint(folder / "c.npz", {}) == ({}, {})
