"""OpenQASM angle expressions both ways: ``from_qasm`` reads products, quotients, powers and
``sin cos tan exp log/ln sqrt arctan`` of ``input`` parameters as angle expressions (checked
against Qiskit's own OpenQASM 2 reader on the program with the values substituted, and
against Qiskit's OpenQASM 3 export of ``ZZFeatureMap``), ``to_qasm`` writes them back
(round trip, gradients against finite differences), and what has no form is refused."""

import math
import re

import jax
import numpy as np
import pytest
from helpers import TOL, finite_diff
from reference import expval_ref, statevector_ref

import qjaxrob as qjr
from qjaxrob.errors import ConversionError

pytest.importorskip("openqasm3.parser")
qiskit_qasm2 = pytest.importorskip("qiskit.qasm2")
from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import ParameterVector
from qiskit.circuit import library as lib
from qiskit.quantum_info import Statevector

# a body in the common subset of OpenQASM 2 and 3 (``**`` and ``log`` are rewritten to
# OpenQASM 2's ``^`` and ``ln`` for Qiskit's reader); x, y are parameters
BODY = """h q[0];
h q[1];
rz(2*(pi-x)*(pi-y)) q[1];
rx(sin(x)*cos(y) + exp(x/3) - log(2+cos(y)) + sqrt(1+y**2)) q[0];
u3(x*y, x**2, -y) q[1];
cu1(x/(1+y**2)) q[0], q[1];
ry(tan(x/4) * 2**y - y**3/7) q[2];
crz(-x**2 + pi*y) q[2], q[0];
u2(y*cos(x), arctan(y)) q[2];
cu3(x*y, y/2, exp(-x)) q[1], q[2];
"""


def _qiskit_state(body: str, values: dict) -> np.ndarray:
    """Qiskit's OpenQASM 2 reader on the body with the numbers substituted."""
    text = body.replace("**", "^").replace("log(", "ln(")
    for name, v in values.items():
        text = re.sub(rf"\b{name}\b", f"({v!r})", text)
    qc = qiskit_qasm2.loads('OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[3];\n' + text,
                            custom_instructions=qiskit_qasm2.LEGACY_CUSTOM_INSTRUCTIONS,
                            custom_classical=[qiskit_qasm2.CustomClassical("arctan", 1, math.atan)])
    return Statevector(qc).reverse_qargs().data


def _qasm3(body: str) -> str:
    return ('OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float x;\ninput angle y;\n'
            "qubit[3] q;\n" + body)


@pytest.mark.parametrize("seed", range(2))
def test_expressions_match_qiskit_reader(seed):
    rng = np.random.default_rng(seed)
    c = qjr.from_qasm(_qasm3(BODY), inputs=["y"])
    assert (c.n_params, c.n_inputs) == (1, 1)
    assert sum(a.source == "expr" for op in c.ops for a in op.angles) >= 8
    for _ in range(3):
        x, y = rng.uniform(-2.0, 2.0, 2)
        want = _qiskit_state(BODY, {"x": float(x), "y": float(y)})
        np.testing.assert_allclose(statevector_ref(c, [x], [y]), want, atol=1e-10)
        got = qjr.statevector(c, np.array([x]), np.array([y]), dtype=np.complex128)
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_openqasm2_power_and_ln_keep_their_meaning():
    """``-pi^2/4 + 1``: ``^`` binds tighter than unary minus and ``/`` in OpenQASM 2
    (OpenQASM 3 would read ``^`` as xor, with the lowest precedence); right associative."""
    for angle, value in (("-pi^2/4 + 1", -math.pi**2 / 4 + 1), ("2^3^0.5", 2 ** 3**0.5),
                         ("ln(3)*2^-1", math.log(3) / 2), ("-2^2", -4.0)):
        c = qjr.from_qasm(f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nrx({angle}) q[0];')
        assert c.ops[0].angles[0].offset == pytest.approx(value, rel=1e-15)
        ref = qiskit_qasm2.loads(f'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\nrx({angle}) q[0];')
        assert float(ref.data[0].operation.params[0]) == pytest.approx(value, rel=1e-15)
    src = ('OPENQASM 2.0;\ninclude "qelib1.inc";\ngate g(a, b) p { rz(a^2 * ln(b)) p; }\n'
           "qreg q[1];\ng(1.5, 2) q[0];")
    assert qjr.from_qasm(src).ops[0].angles[0].offset == pytest.approx(2.25 * math.log(2))


@pytest.mark.parametrize("n", [2, 3])
def test_qiskit_qasm3_export_of_zz_feature_map(n):
    """Qiskit's own OpenQASM 3 text of ZZFeatureMap (``(-pi + x0)*(-pi + x1)*2``) reads
    into the same state Qiskit gives, the data declared as inputs."""
    rng = np.random.default_rng(n)
    fm = lib.zz_feature_map(n, reps=2)
    text = qasm3.dumps(fm.decompose())
    names = re.findall(r"input float\[64\] (\w+);", text)
    assert len(names) == n
    c = qjr.from_qasm(text, inputs=names)
    assert (c.n_params, c.n_inputs) == (0, n)
    x = rng.uniform(0, 2 * np.pi, n)
    want = Statevector(fm.assign_parameters(x)).reverse_qargs().data
    got = qjr.statevector(c, None, x, dtype=np.complex128)
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_qiskit_qasm3_export_of_a_parameter_expression():
    a = ParameterVector("a", 2)
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    qc.rx((a[0] * a[1]).sin() + a[0] ** 2 + a[1].exp() / a[0] + (a[0] + 3).log(), 0)
    qc.crz(a[1] ** 3 - (a[0] / 2).cos(), 0, 1)
    c = qjr.from_qasm(qasm3.dumps(qc))
    for values in ([0.7, -1.2], [1.9, 0.4]):
        want = Statevector(qc.assign_parameters(values)).reverse_qargs().data
        got = qjr.statevector(c, np.array(values), dtype=np.complex128)
        np.testing.assert_allclose(got, want, atol=1e-10)


def _expression_circuit():
    p, x = qjr.param, qjr.inp
    return (qjr.Circuit(3).h(0).h(1)
            .rz(1, 2 * (np.pi - x(0)) * (np.pi - x(1)))
            .ry(0, qjr.sin(p(0)) * x(1) + qjr.exp(p(1) / 3) - qjr.log(2 + qjr.cos(x(0))))
            .crx(0, 2, p(0) * p(1) + qjr.sqrt(1 + x(0) ** 2))
            .u3(2, p(1) ** 2, qjr.arctan(x(1)) / p(0), qjr.tan(p(0) / 4))
            .rzz(1, 2, p(0) * 0.5 - 0.25)
            .crz(2, 0, x(0) * 1.5))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_to_qasm_round_trip_of_expressions(dtype):
    c = _expression_circuit()
    text = qjr.to_qasm(c)
    assert "input float p_1;" in text and "input float x_1;" in text
    back = qjr.from_qasm(text, inputs=["x_0", "x_1"])
    assert (back.n_params, back.n_inputs) == (2, 2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        real = np.float32 if dtype == np.complex64 else np.float64
        p, x = rng.uniform(0.3, 1.5, 2).astype(real), rng.uniform(-1.5, 1.5, 2).astype(real)
        want = statevector_ref(c, p, x)
        np.testing.assert_allclose(qjr.statevector(back, p, x, dtype=dtype), want, atol=TOL[dtype])
    # written again, the text is the same: the round trip is a fixed point
    assert qjr.to_qasm(back) == text


def test_gradients_through_read_expressions_match_finite_differences():
    c = qjr.from_qasm(_qasm3(BODY), inputs=["y"])
    obs = qjr.Z(0) @ qjr.X(2) + 0.5 * qjr.Y(1)
    p, x = np.array([0.8]), np.array([-0.6])
    fd_p = finite_diff(lambda v: expval_ref(c, obs, v, x), p)
    fd_x = finite_diff(lambda v: expval_ref(c, obs, p, v), x)
    for diff in ("backprop", "adjoint"):
        gp, gx = jax.grad(lambda p, x: qjr.expval(c, obs, p, x, dtype=np.complex128, diff=diff),
                          argnums=(0, 1))(p, x)
        np.testing.assert_allclose(gp, fd_p, atol=1e-6)
        np.testing.assert_allclose(gx, fd_x, atol=1e-6)


@pytest.mark.parametrize("angle, message", [
    ("floor(t)", r"line 4: unknown function 'floor' in an angle expression"),
    ("t ^ 2", r"line 4: operator '\^' has no meaning on angles"),
    ("t / 0", r"line 4: division by zero"),
    ("t * (1 / 0)", r"line 4: division by zero"),
])
def test_bad_expressions_name_the_line(angle, message):
    with pytest.raises(ConversionError, match=message):
        qjr.from_qasm(f"OPENQASM 3.0;\ninput float t;\nqubit q;\nrx({angle}) q;")


def test_to_qasm_refuses_functions_without_an_openqasm_form():
    c = qjr.Circuit(1).rx(0, qjr.sinh(qjr.param(0)) * qjr.inp(0))
    with pytest.raises(ConversionError, match=r"op 0 .*sinh.*not an OpenQASM 3 function"):
        qjr.to_qasm(c)


def test_to_qasm_unrolls_repeat_blocks_with_expressions():
    """Each repetition reads its own parameters: the unrolled text names p_1..p_6."""
    block = (qjr.Circuit(2).ry(0, qjr.param(0) * qjr.inp(0)).rzz(0, 1, qjr.sin(qjr.param(1)))
             .rx(1, qjr.param(1) * -2.0 + 0.5))
    c = (qjr.Circuit(2).h(0) + qjr.Circuit.repeat(block, 3, param_offset=1)
         + qjr.Circuit(2).rz(1, qjr.param(0) ** 2))
    back = qjr.from_qasm(qjr.to_qasm(c), inputs=["x_0"])
    assert back.n_params == c.n_params == 7
    rng = np.random.default_rng(1)
    for _ in range(3):
        p, x = rng.normal(size=7), rng.normal(size=1)
        np.testing.assert_allclose(statevector_ref(back, p, x), statevector_ref(c, p, x),
                                   atol=1e-12)


def test_to_qasm_keeps_operator_precedence():
    """Scaled leaves and negative constants as operands of ``/`` and ``**`` (where the
    unparenthesised text would mean something else: ``x / 2.0 * p``, ``-2.0 ** x``)."""
    p, x = qjr.param, qjr.inp
    c = (qjr.Circuit(1).rx(0, x(0) / (p(0) * 2.0)).ry(0, (p(0) * -1.0) ** 3)
         .rz(0, -(p(0) * -2.0) * x(0)).rx(0, x(0) ** (p(0) * 0.5)).ry(0, (-2.0) ** x(0))
         .rz(0, 2.0 / (x(0) * p(0)) ** -1.5).u3(0, p(0) * x(0), -0.3, x(0) * -1.0 + 0.25))
    back = qjr.from_qasm(qjr.to_qasm(c), inputs=["x_0"])
    for pv, xv in (([0.7], [2.0]), ([1.3], [1.0]), ([0.4], [3.0])):   # every angle real
        np.testing.assert_allclose(statevector_ref(back, pv, xv), statevector_ref(c, pv, xv),
                                   atol=1e-12)
