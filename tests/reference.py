"""An independent dense NumPy reference simulator for the tests.

Gate matrices are built from their *definitions* (``scipy.linalg.expm`` of Pauli
generators, OpenQASM's U formula, explicit controlled blocks), not from ``qjaxrob.ir.gates``.
Full ``2**n x 2**n`` operators are assembled with ``np.kron`` and a wire permutation, and
states are evolved by matrix-vector products; channels by ``sum_i K_i rho K_i^dagger`` with
Kraus sets written out from Nielsen & Chuang. Slow, obvious, and separate from the
library's kernels by construction.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.linalg import expm

from qjaxrob.ir.circuit import Repeat

PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


def kron(*ms):
    out = np.eye(1, dtype=complex)
    for m in ms:
        out = np.kron(out, m)
    return out


def controlled(u):
    out = np.eye(4, dtype=complex)
    out[2:, 2:] = u
    return out


def rot(p, t):
    return expm(-0.5j * t * PAULI[p])


def gate_matrix_ref(name, angles):
    """The gate's matrix from its DESIGN.md definition."""
    a = list(angles)
    fixed = {
        "i": PAULI["I"], "x": PAULI["X"], "y": PAULI["Y"], "z": PAULI["Z"],
        "h": (PAULI["X"] + PAULI["Z"]) / np.sqrt(2),
        "s": np.diag([1, 1j]), "sdg": np.diag([1, -1j]),
        "t": np.diag([1, np.exp(1j * np.pi / 4)]), "tdg": np.diag([1, np.exp(-1j * np.pi / 4)]),
        "cnot": controlled(PAULI["X"]), "cy": controlled(PAULI["Y"]), "cz": controlled(PAULI["Z"]),
        "swap": np.eye(4)[[0, 2, 1, 3]],
        "iswap": expm(0.25j * np.pi * (kron(PAULI["X"], PAULI["X"]) + kron(PAULI["Y"], PAULI["Y"]))),
    }
    if name in fixed:
        return np.asarray(fixed[name], dtype=complex)
    if name == "sx":
        # principal square root of X: eigenvalues 1 and 1j on |+> and |->
        plus = np.array([1, 1]) / np.sqrt(2)
        minus = np.array([1, -1]) / np.sqrt(2)
        return np.outer(plus, plus) + 1j * np.outer(minus, minus)
    if name in ("rx", "ry", "rz"):
        return rot(name[1].upper(), a[0])
    if name == "phase":
        return np.diag([1, np.exp(1j * a[0])])
    if name == "u3":
        th, ph, lam = a
        return np.array([
            [np.cos(th / 2), -np.exp(1j * lam) * np.sin(th / 2)],
            [np.exp(1j * ph) * np.sin(th / 2), np.exp(1j * (ph + lam)) * np.cos(th / 2)],
        ])
    if name in ("crx", "cry", "crz"):
        return controlled(rot(name[2].upper(), a[0]))
    if name in ("rxx", "ryy", "rzz"):
        p = PAULI[name[1].upper()]
        return expm(-0.5j * a[0] * kron(p, p))
    if name == "ccx":
        out = np.eye(8, dtype=complex)
        out[6:, 6:] = PAULI["X"]
        return out
    raise KeyError(name)


def embed(matrix, wires, n):
    """The ``2**n x 2**n`` operator acting as ``matrix`` on ``wires`` (wire 0 = MSB)."""
    k = len(wires)
    full = kron(matrix, np.eye(2 ** (n - k)))
    # full acts on wire order (wires..., rest...); permute to (0..n-1)
    rest = [w for w in range(n) if w not in wires]
    order = list(wires) + rest
    t = full.reshape((2,) * (2 * n))
    inv = np.argsort(order)
    t = t.transpose(list(inv) + [n + i for i in inv])
    return t.reshape(2**n, 2**n)


def kraus_ref(name, n_wires, values, matrices, meta):
    """Kraus sets written out from Nielsen & Chuang (and DESIGN.md)."""
    p = float(values[0]) if values else None
    if name == "kraus":
        return [np.asarray(m.array) for m in matrices]
    if name == "bit_flip":
        return [np.sqrt(1 - p) * PAULI["I"], np.sqrt(p) * PAULI["X"]]
    if name == "phase_flip":
        return [np.sqrt(1 - p) * PAULI["I"], np.sqrt(p) * PAULI["Z"]]
    if name == "amplitude_damping":
        return [np.array([[1, 0], [0, np.sqrt(1 - p)]]), np.array([[0, np.sqrt(p)], [0, 0]])]
    if name == "phase_damping":
        return [np.array([[1, 0], [0, np.sqrt(1 - p)]]), np.array([[0, 0], [0, np.sqrt(p)]])]
    if name == "depolarizing":
        d2 = 4**n_wires
        ops = []
        for word in itertools.product("IXYZ", repeat=n_wires):
            w = 1 - p + p / d2 if set(word) == {"I"} else p / d2
            ops.append(np.sqrt(w) * kron(*[PAULI[c] for c in word]))
        return ops
    if name == "random_rotation":
        # Average R rho R^dag over a fine Gauss-Hermite grid of theta ~ N(0, sigma^2),
        # returned as a Kraus set sqrt(w_j) R(theta_j).
        sigma = p
        axis = sum(c * PAULI[s] for c, s in zip(meta, "XYZ"))
        nodes, weights = np.polynomial.hermite_e.hermegauss(60)
        weights = weights / weights.sum()
        return [np.sqrt(w) * expm(-0.5j * sigma * t * axis) for t, w in zip(nodes, weights)]
    raise KeyError(name)


_EXPR_FUNCTIONS = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos,
    "arctan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "exp": np.exp,
    "log": np.log, "sqrt": np.sqrt, "neg": np.negative, "add": np.add, "mul": np.multiply,
    "div": np.divide, "pow": np.power,
}


def resolve(angle, params, x):
    if isinstance(angle, float):
        return angle
    if angle.source == "expr":     # an expression tree, evaluated in float64 NumPy
        return float(_EXPR_FUNCTIONS[angle.op](*(resolve(a, params, x) for a in angle.args)))
    if angle.source == "const":
        return angle.offset
    src = params if angle.source == "param" else x
    return angle.scale * float(src[angle.index]) + angle.offset


def flat_ops(circuit):
    """Ops with every Repeat unrolled by hand (independent of Circuit.unroll)."""
    out = []
    for op in circuit.ops:
        if isinstance(op, Repeat):
            stride = op.block.n_params
            for r in range(op.times):
                for inner_op, inner_shift in flat_ops(op.block):
                    out.append((inner_op, op.param_offset + r * stride + inner_shift))
        else:
            out.append((op, 0))
    return out


def op_unitary(op, params, x, n, shift=0):
    p = params[shift:] if params is not None and shift else params
    if op.name == "unitary":
        m = np.asarray(op.matrices[0].array)
    else:
        m = gate_matrix_ref(op.name, [resolve(a, p, x) for a in op.angles])
    return embed(m, op.wires, n)


def statevector_ref(circuit, params=None, x=None):
    n = circuit.n_qubits
    psi = np.zeros(2**n, dtype=complex)
    psi[0] = 1
    for op, shift in flat_ops(circuit):
        if op.name == "cut":
            continue
        if op.is_channel:
            raise ValueError("channel in statevector reference")
        psi = op_unitary(op, params, x, n, shift) @ psi
    return psi


def density_ref(circuit, params=None, x=None):
    n = circuit.n_qubits
    rho = np.zeros((2**n, 2**n), dtype=complex)
    rho[0, 0] = 1
    for op, shift in flat_ops(circuit):
        if op.name == "cut":
            continue
        p = params[shift:] if params is not None and shift else params
        if op.is_channel:
            values = [resolve(a, p, x) for a in op.angles]
            ks = [embed(k, op.wires, n) for k in
                  kraus_ref(op.name, len(op.wires), values, op.matrices, op.meta)]
            rho = sum(k @ rho @ k.conj().T for k in ks)
        else:
            u = op_unitary(op, params, x, n, shift)
            rho = u @ rho @ u.conj().T
    return rho


def observable_matrix(obs, n):
    """Dense matrix of a PauliSum on n qubits."""
    out = np.zeros((2**n, 2**n), dtype=complex)
    for coeff, word in obs.terms:
        letters = dict(word)
        out += coeff * kron(*[PAULI[letters.get(w, "I")] for w in range(n)])
    return out


def expval_ref(circuit, obs, params=None, x=None, mixed=False):
    m = observable_matrix(obs, circuit.n_qubits)
    if mixed:
        return float(np.real(np.trace(m @ density_ref(circuit, params, x))))
    psi = statevector_ref(circuit, params, x)
    return float(np.real(np.vdot(psi, m @ psi)))
