"""``to_qasm`` output read by Qiskit's own OpenQASM 3 importer (``qasm3.loads_experimental``,
the one Qiskit ships without extra packages) gives the same state as qjaxrob, global phase
included: random constant circuits over the gates stdgates.inc names, with one-qubit
unitaries (written as ``U`` + ``gphase``) and the library unitaries ``ch``/``cswap``.
That importer reads neither the builtin ``U`` nor ``gphase``, so the test hands it ``u3``
(stdgates.inc defines ``u3(a, b, c) q { U(a, b, c) q; }``) and the ``gphase`` angle as the
circuit's ``global_phase``; it reads no ``input`` declarations nor ``gate`` definitions,
so traced angles and the two-qubit KAK output are checked through ``from_qasm`` in
test_interop_qasm.py and test_qasm_expressions.py."""

import re
import warnings

import numpy as np
import pytest
from reference import statevector_ref

import qjaxrob as qjr

pytest.importorskip("openqasm3.parser")
qasm3 = pytest.importorskip("qiskit.qasm3")
from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector

from qjaxrob.interop.gatelib import CONSTANT_GATES

GATES = {  # qjaxrob name -> (wires, angles), each written under its stdgates.inc name
    "h": (1, 0), "x": (1, 0), "y": (1, 0), "z": (1, 0), "s": (1, 0), "sdg": (1, 0),
    "t": (1, 0), "tdg": (1, 0), "sx": (1, 0), "i": (1, 0), "rx": (1, 1), "ry": (1, 1),
    "rz": (1, 1), "phase": (1, 1), "u3": (1, 3), "cnot": (2, 0), "cy": (2, 0), "cz": (2, 0),
    "swap": (2, 0), "crx": (2, 1), "cry": (2, 1), "crz": (2, 1), "ccx": (3, 0),
}


def _haar(rng, d):
    z = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    q, r = np.linalg.qr(z)
    return q * (np.diag(r) / np.abs(np.diag(r)))


def _random_circuit(rng, n, depth):
    c = qjr.Circuit(n)
    names = sorted(GATES)
    for _ in range(depth):
        kind = rng.integers(len(names) + 3)
        if kind == len(names):
            c = c.unitary(_haar(rng, 2), wires=(int(rng.integers(n)),))
        elif kind == len(names) + 1:
            c = c.unitary(CONSTANT_GATES["ch"], wires=tuple(int(w) for w in rng.permutation(n)[:2]))
        elif kind == len(names) + 2:
            c = c.unitary(CONSTANT_GATES["cswap"], wires=tuple(int(w) for w in rng.permutation(n)[:3]))
        else:
            k, n_angles = GATES[names[kind]]
            wires = [int(w) for w in rng.permutation(n)[:k]]
            c = c.gate(names[kind], wires, *rng.uniform(-np.pi, np.pi, n_angles))
    return c


@pytest.mark.parametrize("seed", range(8))
def test_qiskit_qasm3_importer_reads_to_qasm_output(seed):
    rng = np.random.default_rng(seed)
    n = 3 + seed % 3
    c = _random_circuit(rng, n, 14)
    text = qjr.to_qasm(c)
    phases = [float(a) for a in re.findall(r"^gphase\((.*)\);$", text, re.MULTILINE)]
    assert len(phases) <= 1 and "unitary" not in text
    text = re.sub(r"^gphase\(.*\);\n", "", text, flags=re.MULTILINE)
    text = re.sub(r"^U\(", "u3(", text, flags=re.MULTILINE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the importer's ExperimentalWarning
        qc = qasm3.loads_experimental(text)
    qc.global_phase += sum(phases)
    prep_angles = rng.uniform(-np.pi, np.pi, (n, 3))
    prep_q = QuantumCircuit(n)
    prep_c = qjr.Circuit(n)
    for q in range(n):
        prep_q.u(*prep_angles[q], q)
        prep_c = prep_c.u3(q, *prep_angles[q])
    want = Statevector(prep_q.compose(qc)).reverse_qargs().data
    np.testing.assert_allclose(statevector_ref(prep_c + c), want, atol=1e-10)
