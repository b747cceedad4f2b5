"""OpenQASM in and out: hand-written OpenQASM 2 and 3 programs parse to the expected
circuits, every qelib1 gate agrees with Qiskit's own OpenQASM 2 reader, to_qasm round
trips on random circuits, and bad programs fail with their line."""

import math
import re
import subprocess
import sys

import numpy as np
import pytest

import qjaxrob as qjr
from qjaxrob.errors import ConversionError, MissingDependencyError, QjrTypeError
from tests.reference import statevector_ref

pytest.importorskip("openqasm3.parser")
qiskit_qasm2 = pytest.importorskip("qiskit.qasm2")
from qiskit.quantum_info import Statevector

PI = math.pi


def test_qasm2_program_parses_to_expected_circuit():
    src = """OPENQASM 2.0;
include "qelib1.inc";
// two registers: q[0], q[1] are wires 0, 1 and r[0] is wire 2
qreg q[2];
qreg r[1];
creg c[3];
h q[0];
cx q[0],q[1];
u3(pi/2,0,pi) r[0];
u2(0.1,0.2) q;
u1(0.3) r[0];
rzz(0.4) q[1],r[0];
U(0.1,0.2,0.3) q[0];
CX q[1],q[0];
gate g(a,b) x,y { U(a,b,0) x; CX x,y; }
g(0.1,-0.2*2) q[0],r[0];
barrier q;
measure q -> c[0:1];
measure r[0] -> c[2];
"""
    expected = (qjr.Circuit(3).h(0).cnot(0, 1).u3(2, PI / 2, 0.0, PI)
                .u3(0, PI / 2, 0.1, 0.2).u3(1, PI / 2, 0.1, 0.2).phase(2, 0.3).rzz(1, 2, 0.4)
                .u3(0, 0.1, 0.2, 0.3).cnot(1, 0).u3(0, 0.1, -0.4, 0.0).cnot(0, 2))
    assert qjr.from_qasm(src) == expected


def test_qasm3_program_parses_to_expected_circuit():
    src = """OPENQASM 3.0;
include "stdgates.inc";
input angle[32] beta;
input float alpha;
const float half = pi / 2;
qubit[3] q;
bit[3] c;
gate entangle(t) a, b { ry(t) a; cx a, b; }
h q;
entangle(2 * alpha + half) q[0], q[2];
rx(-beta / 4) q[-1];
crz(alpha - 0.5) q[1], q[0];
cz q[{0, 2}], q[1];
p(euler) q[0:1];
barrier q;
c = measure q;
"""
    a, b = qjr.param(1), qjr.param(0)   # inputs in declaration order: beta, alpha
    expected = (qjr.Circuit(3).h(0).h(1).h(2).ry(0, a * 2.0 + PI / 2).cnot(0, 2)
                .rx(2, b * -0.25).crz(1, 0, a - 0.5).cz(0, 1).cz(2, 1)
                .phase(0, math.e).phase(1, math.e))
    assert qjr.from_qasm(src) == expected
    data = qjr.from_qasm(src, inputs=("alpha",))
    assert data.n_inputs == 1 and data.n_params == 1
    assert data.ops[3].angles[0] == qjr.inp(0) * 2.0 + PI / 2


def test_physical_qubits_and_single_qubit_declaration():
    assert qjr.from_qasm("OPENQASM 3.0;\nx $2;\ncx $0, $1;") == qjr.Circuit(3).x(2).cnot(0, 1)
    assert qjr.from_qasm("OPENQASM 3;\nqubit a;\nqubit b;\nswap a, b;") == qjr.Circuit(2).swap(0, 1)


def test_sums_of_parameters_split_exactly():
    src = """OPENQASM 3.0;
input float a;
input float b;
qubit[2] q;
rz(a + 2 * b - 0.3) q[0];
U(a, b, a - b) q[1];
rxx(b - a) q[0], q[1];
gphase(a);
"""
    c = qjr.from_qasm(src)
    params = np.array([0.7, -1.1])
    a, b = params
    ref = (qjr.Circuit(2).rz(0, a + 2 * b - 0.3).u3(1, a, b, a - b).rxx(0, 1, b - a))
    expected = np.exp(1j * a) * statevector_ref(ref)
    np.testing.assert_allclose(statevector_ref(c, params), expected, atol=1e-12)
    sv = qjr.statevector(c, params, dtype=np.complex128)
    np.testing.assert_allclose(np.asarray(sv), expected, atol=1e-12)


QELIB_PROGRAM = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
qreg r[1];
h q; sx q[1]; rx(0.3) q[0]; ry(-0.7) q[1]; rz(1.1) q[2]; ry(0.4) r[0];
id q[0]; x q[1]; y q[2]; z q[0]; s q[1]; sdg q[2]; t q[0]; tdg q[1]; sxdg q[2];
u(0.1,0.2,0.3) q[0]; u3(0.4,0.5,0.6) q[1]; u2(0.7,0.8) q[2]; u1(0.9) q[0]; p(1.0) q[1];
U(0.2,0.3,0.4) q[2]; CX q[0],q[1]; cx q[1],q[2]; cy q[2],q[0]; cz q[0],q[2]; swap q[1],q[2];
ch q[0],q[1]; csx q[2],q[0]; crx(0.5) q[0],q[1]; cry(0.6) q[1],q[2]; crz(0.7) q[2],q[0];
cp(0.8) q[0],q[2]; cu1(0.9) q[1],q[0]; cu3(0.3,0.2,0.1) q[2],q[1];
cu(0.4,0.5,0.6,0.7) q[0],q[1]; rxx(0.3) q[0],q[1]; rzz(0.6) q[1],q[2];
ccx q[0],q[1],q[2]; cswap q[2],q[0],q[1]; c3x q[0],q[1],q[2],r[0];
"""


def test_qelib1_gates_match_qiskit_reader():
    """Qiskit's OpenQASM 2 reader is an independent reference for every qelib1 gate."""
    c = qjr.from_qasm(QELIB_PROGRAM)
    qc = qiskit_qasm2.loads(QELIB_PROGRAM, custom_instructions=qiskit_qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    ref = Statevector(qc).reverse_qargs().data
    np.testing.assert_allclose(statevector_ref(c), ref, atol=1e-12)


def _random_constant_circuit(rng, n, n_ops):
    names = [g for g, spec in qjr.GATES.items() if spec.n_wires <= n]
    c = qjr.Circuit(n)
    for _ in range(n_ops):
        name = names[rng.integers(len(names))]
        spec = qjr.GATES[name]
        wires = tuple(int(w) for w in rng.permutation(n)[: spec.n_wires])
        angles = [float(a) for a in rng.normal(0, 2, spec.n_angles) * 10.0 ** rng.integers(-6, 2)]
        c = c.gate(name, wires, *angles)
    return c


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_random_circuits(seed):
    rng = np.random.default_rng(seed)
    c = _random_constant_circuit(rng, int(rng.integers(1, 5)), int(rng.integers(1, 25)))
    assert qjr.from_qasm(qjr.to_qasm(c)) == c


def test_round_trip_definitions_are_exact():
    """iswap/rxx/ryy/rzz are exported as gate definitions: the definitions themselves,
    expanded (renamed so from_qasm cannot recognise them), equal the native gates."""
    c = qjr.Circuit(3).iswap(0, 2).rxx(1, 0, 0.3).ryy(2, 1, -1.2).rzz(0, 1, 2.5).h(1)
    text = qjr.to_qasm(c)
    renamed = re.sub(r"\b(iswap|rxx|ryy|rzz)\b", r"my_\1", text)
    expanded = qjr.from_qasm(renamed)
    assert len(expanded.ops) > len(c.ops)
    np.testing.assert_allclose(statevector_ref(expanded), statevector_ref(c), atol=1e-12)
    assert qjr.from_qasm(text) == c


def test_round_trip_unrolls_repeat():
    block = qjr.Circuit(2).ry(0, 0.3).cnot(0, 1)
    c = qjr.Circuit.repeat(block, 3)
    assert qjr.from_qasm(qjr.to_qasm(c)) == c.unroll()


def test_redefined_standard_gate_uses_the_definition():
    src = 'OPENQASM 3.0;\ngate rzz(t) a, b { rx(t) a; }\nqubit[2] q;\nrzz(0.5) q[0], q[1];'
    assert qjr.from_qasm(src) == qjr.Circuit(2).rx(0, 0.5)


@pytest.mark.parametrize("op, message", [
    (lambda c: c.rx(1, qjr.tanh(qjr.inp(0)) * 2.0), "tanh, which is not an OpenQASM 3 function"),
    (lambda c: c.depolarizing(0, 0.1), "noise channels"),
    (lambda c: c.cut(0), "cut marks"),
    (lambda c: c.cz(0, 1, cut=True), "cut marks"),
])
def test_to_qasm_rejects(op, message):
    with pytest.raises(ConversionError, match=message):
        qjr.to_qasm(op(qjr.Circuit(2).h(0)))
    with pytest.raises(QjrTypeError, match="str"):
        qjr.to_qasm("h q[0];")


BAD = [
    ("OPENQASM 3.0;\nqubit[2] q;\nh q[0]\ncx q[0], q[1];", r"malformed OpenQASM at line 4, column 0 near 'cx'"),
    ("OPENQASM 3.0;\nqubit[2] q;\nh q[0]; $$", r"malformed OpenQASM at line 3"),
    ("OPENQASM 2.0;\nqreg q[1];\nopaque foo q;", r"line 3: opaque gate declarations"),
    ("OPENQASM 3.0;\nqubit[2] q;\nfoo q[0];", r"line 3: unknown or unsupported gate 'foo': 'foo q\[0\];'"),
    ("OPENQASM 3.0;\nqubit[2] q;\nrx(theta) q[0];", r"line 3: unknown name 'theta'"),
    ("OPENQASM 3.0;\ninput float t;\nqubit q;\nrx(mod(t)) q;", r"line 4: unknown function 'mod'"),
    ("OPENQASM 3.0;\ninput float t;\nqubit q;\nrx(t & 1) q;", r"line 4: operator '&' has no"),
    ("OPENQASM 2.0;\nqreg q[1];\ncreg c[1];\nif(c==1) x q[0];", r"line 4: classical control \(if\)"),
    ("OPENQASM 3.0;\nqubit q;\nreset q;", r"line 3: reset is not supported"),
    ("OPENQASM 3.0;\nqubit q;\nbit b;\nb = measure q;\nx q;", r"line 5: .*after its measurement at line 4"),
    ("OPENQASM 3.0;\nqubit[2] q;\nctrl @ x q[0], q[1];", r"line 3: gate modifiers"),
    ('OPENQASM 3.0;\ninclude "mine.inc";\nqubit q;', r"line 2: cannot include 'mine.inc'"),
    ("OPENQASM 3.0;\nqubit[2] q;\nx q[2];", r"line 3: qubit index 2 out of range"),
    ("OPENQASM 3.0;\nqubit[2] q;\ncx q[0], q[0];", r"line 3: repeated wire"),
    ("OPENQASM 3.0;\nqubit[2] q;\nrx q[0];", r"line 3: gate 'rx' takes 1 angle\(s\) and 1 qubit\(s\), got 0 and 1"),
    ("OPENQASM 3.0;\nqubit[2] a;\nqubit[3] b;\ncx a, b;", r"line 4: registers of different sizes"),
    ("OPENQASM 3.0;\nqubit[2] q;\nh r[0];", r"line 3: unknown qubit register 'r'"),
    ("OPENQASM 3.0;\nqubit q;\nfor int i in [0:2] { x q; }", r"line 3: loops are not supported"),
    ("OPENQASM 3.0;\nqubit q;\nfloat f = 0.5;", r"line 3: classical variables"),
    ("OPENQASM 3.0;\nbit b;", r"declares no qubits"),
    ("OPENQASM 3.0;\nqubit q;\nx $1;", r"mixes physical qubits"),
]


@pytest.mark.parametrize("src, message", BAD)
def test_bad_programs_name_the_line(src, message):
    with pytest.raises(ConversionError, match=message):
        qjr.from_qasm(src)


def test_bad_arguments():
    with pytest.raises(QjrTypeError, match="bytes"):
        qjr.from_qasm(b"OPENQASM 3.0;")
    with pytest.raises(ConversionError, match=r"inputs \['x'\] are not declared"):
        qjr.from_qasm("OPENQASM 3.0;\nqubit q;\nh q;", inputs=("x",))
    src = "OPENQASM 3.0;\ninput float t;\nqubit q;\nrx(t) q;"
    with pytest.raises(qjr.errors.ParameterError, match="params"):
        qjr.statevector(qjr.from_qasm(src))   # a parameter without a value


def test_missing_parser_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "openqasm3.parser", None)
    with pytest.raises(MissingDependencyError, match=r"qjaxrob\[qasm\]"):
        qjr.from_qasm("OPENQASM 3.0;\nqubit q;")


def test_interop_imports_no_peer_package():
    """``qjr.from_qasm`` & co. resolve without importing openqasm3, Qiskit or PennyLane."""
    code = ("import sys, qjaxrob as qjr; qjr.from_qasm, qjr.from_qiskit, qjr.from_pennylane; "
            "print(sorted(m for m in ('openqasm3', 'qiskit', 'pennylane') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("angle, message", [
    ("exp(1000)", r"cannot evaluate exp\(1000\.0\) \(math range error\)"),
    ("log(-1)", r"cannot evaluate log\(-1\.0\) \(math domain error\)"),
    ("2**5000", r"cannot evaluate 2\.0 \*\* 5000\.0"),
    ("(-8)**0.5", r"is not a finite real angle"),
    ("1/0", r"division by zero"),
    ("sin(1, 2)", r"sin\(\) takes one argument, got 2"),
])
def test_bad_constant_expressions_name_the_line(angle, message):
    for header in ("OPENQASM 3.0;\nqubit[2] q;\n",
                   'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\n'):
        n = header.count("\n") + 1
        with pytest.raises(ConversionError, match=rf"line {n}: .*{message}.*'rx\("):
            qjr.from_qasm(header + f"rx({angle}) q[0];")
    # inside a gate definition, the line of the definition's statement
    src = f"OPENQASM 3.0;\ngate g a {{\n  rx({angle}) a;\n}}\nqubit q;\ng q;"
    with pytest.raises(ConversionError, match=rf"line 3: .*{message}"):
        qjr.from_qasm(src)


@pytest.mark.parametrize("text", ["", "   \n", "// only a comment\n", "/* a\nblock */"])
def test_empty_program_is_a_clear_error(text):
    with pytest.raises(ConversionError, match="empty"):
        qjr.from_qasm(text)


# ---- every library gate reads and writes; unitaries are written decomposed -------------------
QELIB1 = {  # name -> (n_qubits, n_angles), every gate of qelib1.inc
    "u3": (1, 3), "u2": (1, 2), "u1": (1, 1), "cx": (2, 0), "id": (1, 0), "u0": (1, 1),
    "u": (1, 3), "p": (1, 1), "x": (1, 0), "y": (1, 0), "z": (1, 0), "h": (1, 0), "s": (1, 0),
    "sdg": (1, 0), "t": (1, 0), "tdg": (1, 0), "rx": (1, 1), "ry": (1, 1), "rz": (1, 1),
    "sx": (1, 0), "sxdg": (1, 0), "cz": (2, 0), "cy": (2, 0), "swap": (2, 0), "ch": (2, 0),
    "ccx": (3, 0), "cswap": (3, 0), "crx": (2, 1), "cry": (2, 1), "crz": (2, 1),
    "cu1": (2, 1), "cp": (2, 1), "cu3": (2, 3), "csx": (2, 0), "cu": (2, 4), "rxx": (2, 1),
    "rzz": (2, 1), "rccx": (3, 0), "rc3x": (4, 0), "c3x": (4, 0), "c3sqrtx": (4, 0),
    "c4x": (5, 0), "U": (1, 3), "CX": (2, 0),
}
STDGATES = {  # stdgates.inc names missing from qelib1.inc -> the qelib1 gate they equal
    "phase": "p", "cphase": "cp",
}


def _gate_line(name, spec, rng, register="q"):
    k, n_angles = spec
    wires = rng.permutation(5)[:k]
    values = rng.uniform(-3, 3, n_angles)
    angles = f"({', '.join(repr(float(a)) for a in values)})" if n_angles else ""
    if name == "u0":
        angles = "(2)"  # Qiskit reads u0's argument as an integer count of idle periods
    return f"{name}{angles} {', '.join(f'{register}[{w}]' for w in wires)};"


def _random_input_state(rng, n):
    c = qjr.Circuit(n)
    for q in range(n):
        c = c.u3(q, *rng.uniform(-3, 3, 3))
    return c


def _same_operator(a, b, rng):
    """Equal action (global phase included) on a random product input state."""
    prep = _random_input_state(rng, a.n_qubits)
    np.testing.assert_allclose(statevector_ref(prep + b), statevector_ref(prep + a), atol=1e-10)


@pytest.mark.parametrize("name", sorted(QELIB1) + sorted(STDGATES))
def test_every_library_gate_reads_and_writes(name):
    """Each gate of qelib1.inc and stdgates.inc: from_qasm agrees with Qiskit's OpenQASM 2
    reader (stdgates-only names: with the qelib1 gate they equal), and
    from_qasm(to_qasm(from_qasm(text))) is the same operator."""
    rng = np.random.default_rng(sum(map(ord, name)))
    spec = QELIB1[STDGATES.get(name, name)]
    line = _gate_line(name, spec, rng)
    if name in STDGATES:
        c = qjr.from_qasm(f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[5] q;\n{line}')
        line = line.replace(name, STDGATES[name], 1)
    head = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[5];\n'
    ref = qiskit_qasm2.loads(head + line,
                             custom_instructions=qiskit_qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    if name not in STDGATES:
        c = qjr.from_qasm(head + line)
    prep = _random_input_state(rng, 5)
    want = Statevector(_prep_qiskit(prep).compose(ref)).reverse_qargs().data
    np.testing.assert_allclose(statevector_ref(prep + c), want, atol=1e-10)
    text = qjr.to_qasm(c)
    _same_operator(c, qjr.from_qasm(text), rng)


def _prep_qiskit(prep):
    from qiskit import QuantumCircuit
    qc = QuantumCircuit(prep.n_qubits)
    for op in prep.ops:
        qc.u(*(a.offset for a in op.angles), op.wires[0])
    return qc


def _haar(rng, d):
    z = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


SPECIAL_2Q = [np.eye(4), np.eye(4)[[0, 1, 3, 2]], np.eye(4)[[0, 2, 1, 3]],
              np.diag([1, 1j, -1, np.exp(0.3j)]),
              np.kron(np.array([[0, 1], [1, 0]]), np.diag([1, 1j]))]


@pytest.mark.parametrize("seed", range(6))
def test_to_qasm_decomposes_one_and_two_qubit_unitaries(seed):
    """Haar-random and degenerate (identity, CNOT, SWAP, diagonal, local) unitaries are
    written as U / rxx / ryy / rzz / gphase and read back as the same operator."""
    rng = np.random.default_rng(seed)
    n = 3
    c = qjr.Circuit(n).h(0).cnot(0, 2)
    for k in (1, 2, 1, 2):
        wires = tuple(int(w) for w in rng.permutation(n)[:k])
        u = _haar(rng, 2**k) if k == 1 or seed % 2 else SPECIAL_2Q[(seed + len(c.ops)) % 5]
        c = c.unitary(u, wires=wires).ry(int(rng.integers(n)), float(rng.normal()))
    text = qjr.to_qasm(c)
    assert "unitary" not in text and "gphase(" in text
    _same_operator(c, qjr.from_qasm(text), rng)


def test_to_qasm_names_library_unitaries_and_refuses_wider_ones():
    from qjaxrob.interop.gatelib import CONSTANT_GATES
    rng = np.random.default_rng(5)
    c = qjr.Circuit(5).unitary(CONSTANT_GATES["rccx"], wires=(2, 0, 4))
    c = c.unitary(CONSTANT_GATES["c4x"], wires=(4, 3, 2, 1, 0))
    c = c.unitary(CONSTANT_GATES["cswap"], wires=(1, 2, 3))
    text = qjr.to_qasm(c)
    assert "rccx q[2], q[0], q[4];" in text and "cswap q[1], q[2], q[3];" in text
    assert text.index("gate c3x") < text.index("gate c4x")   # c4x is defined through c3x
    assert "gate cswap" not in text                         # stdgates.inc has it
    _same_operator(c, qjr.from_qasm(text), rng)
    wide = qjr.Circuit(3).unitary(_haar(rng, 8), wires=(0, 1, 2))
    with pytest.raises(ConversionError, match=r"op 0 \(unitary on wires \(0, 1, 2\)\): a "
                                              r"3-qubit unitary has no OpenQASM form"):
        qjr.to_qasm(wide)


@pytest.mark.parametrize("seed", range(6))
def test_qiskit_random_circuits_through_qasm2(seed):
    """qasm2.dumps of random Qiskit circuits (rccx, c3sqrtx, ... included) reads, agrees
    with Qiskit, and writes back."""
    from qiskit.circuit.random import random_circuit
    rng = np.random.default_rng(seed)
    n = 3 + seed % 3
    qc = random_circuit(n, 5, max_operands=4, seed=seed)
    text = qiskit_qasm2.dumps(qc)
    c = qjr.from_qasm(text)
    prep = _random_input_state(rng, n)
    want = Statevector(_prep_qiskit(prep).compose(qc)).reverse_qargs().data
    np.testing.assert_allclose(statevector_ref(prep + c), want, atol=1e-10)
    _same_operator(c, qjr.from_qasm(qjr.to_qasm(c)), rng)
