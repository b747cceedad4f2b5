"""Pauli-string observables and their weighted sums.

An observable is a :class:`PauliSum`: a static, hashable tuple of ``(coefficient, word)``
terms, where ``word`` is a tuple of ``(wire, letter)`` pairs sorted by wire with letters in
"XYZ" (identities dropped). Build them with ``X(0) @ Z(3) + 0.5 * Y(1)`` or
``pauli("ZIIZ")``. ``@`` multiplies operators (on a shared wire the Pauli algebra applies,
e.g. ``X(0) @ Y(0) == 1j * Z(0)``); ``expval`` requires real coefficients (Hermitian).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from qjaxrob.errors import ObservableError, QjrTypeError, WireError

__all__ = ["PauliSum", "X", "Y", "Z", "I", "pauli", "pauli_masks", "split_word"]

# Product table of single-qubit Paulis: (a, b) -> (phase, letter) with a b = phase * letter.
_PRODUCT = {
    ("X", "Y"): (1j, "Z"), ("Y", "X"): (-1j, "Z"),
    ("Y", "Z"): (1j, "X"), ("Z", "Y"): (-1j, "X"),
    ("Z", "X"): (1j, "Y"), ("X", "Z"): (-1j, "Y"),
}


def pauli_masks(words, n: int):
    """Static ``(x_masks, z_masks, phases)`` of Pauli words on n qubits: ``P = i**n_Y
    X^x Z^z`` with bit ``n-1-w`` of a mask for wire w (``Y = i X Z``). Shapes ``(W,)``:
    int32, int32, complex128."""
    xs, zs, phases = [], [], []
    for word in words:
        x = z = ny = 0
        for w, letter in word:
            bit = 1 << (n - 1 - w)
            x |= bit if letter in "XY" else 0
            z |= bit if letter in "ZY" else 0
            ny += letter == "Y"
        xs.append(x)
        zs.append(z)
        phases.append(1j**ny)
    return np.asarray(xs, np.int32), np.asarray(zs, np.int32), np.asarray(phases)


def split_word(word: tuple) -> tuple[str, tuple[int, ...]]:
    """``(letters, wires)`` of a term's word: ``((0, "X"), (3, "Z"))`` -> ``("XZ", (0, 3))``."""
    return "".join(l for _, l in word), tuple(w for w, _ in word)


def _mul_words(a: tuple, b: tuple) -> tuple[complex, tuple]:
    letters = dict(a)
    phase = 1 + 0j
    for wire, lb in b:
        la = letters.get(wire)
        if la is None:
            letters[wire] = lb
        elif la == lb:
            del letters[wire]
        else:
            p, letter = _PRODUCT[(la, lb)]
            phase *= p
            letters[wire] = letter
    return phase, tuple(sorted(letters.items()))


@dataclass(frozen=True)
class PauliSum:
    """A weighted sum of Pauli strings (static and hashable).

    Attributes:
        terms: tuple of ``(coeff, word)``; ``coeff`` a Python complex, ``word`` a tuple of
            ``(wire, letter)`` sorted by wire. Like terms are merged; zero terms dropped.
    """

    terms: tuple = ()

    @staticmethod
    def _from_terms(pairs) -> PauliSum:
        merged: dict[tuple, complex] = {}
        for coeff, word in pairs:
            merged[word] = merged.get(word, 0) + complex(coeff)
        return PauliSum(tuple((c, w) for w, c in merged.items() if c != 0))

    @property
    def wires(self) -> tuple[int, ...]:
        """All wires on which some term acts non-trivially, sorted."""
        return tuple(sorted({w for _, word in self.terms for w, _ in word}))

    @property
    def is_hermitian(self) -> bool:
        return all(c.imag == 0 for c, _ in self.terms)

    def __add__(self, other):
        other = _as_observable(other)
        if other is NotImplemented:
            return NotImplemented
        return PauliSum._from_terms(self.terms + other.terms)

    __radd__ = __add__

    def __sub__(self, other):
        other = _as_observable(other)
        if other is NotImplemented:
            return NotImplemented
        return self + (-1) * other

    def __rsub__(self, other):
        return (-1) * self + other

    def __neg__(self):
        return (-1) * self

    def __mul__(self, scalar):
        if not isinstance(scalar, numbers.Number) or isinstance(scalar, bool):
            return NotImplemented
        return PauliSum._from_terms((c * scalar, w) for c, w in self.terms)

    __rmul__ = __mul__

    def __matmul__(self, other):
        if not isinstance(other, PauliSum):
            return NotImplemented
        out = []
        for ca, wa in self.terms:
            for cb, wb in other.terms:
                phase, word = _mul_words(wa, wb)
                out.append((ca * cb * phase, word))
        return PauliSum._from_terms(out)

    def __repr__(self):
        if not self.terms:
            return "PauliSum(0)"
        parts = []
        for c, word in self.terms:
            ops = " @ ".join(f"{l}({w})" for w, l in word) or "I"
            parts.append(f"{c.real if c.imag == 0 else c!r} * {ops}")
        return " + ".join(parts)


def _as_observable(value):
    if isinstance(value, PauliSum):
        return value
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return PauliSum._from_terms([(value, ())])
    return NotImplemented


def _single(letter: str, wire) -> PauliSum:
    if isinstance(wire, bool) or not isinstance(wire, numbers.Integral):
        raise QjrTypeError(f"wire must be an int, got {wire!r}")
    if wire < 0:
        raise ObservableError(f"wire {wire} is negative")
    word = () if letter == "I" else ((int(wire), letter),)
    return PauliSum(((1 + 0j, word),))


def X(wire: int) -> PauliSum:
    """Pauli X on ``wire``."""
    return _single("X", wire)


def Y(wire: int) -> PauliSum:
    """Pauli Y on ``wire``."""
    return _single("Y", wire)


def Z(wire: int) -> PauliSum:
    """Pauli Z on ``wire``."""
    return _single("Z", wire)


def I(wire: int = 0) -> PauliSum:  # noqa: E743 - the conventional name
    """The identity (on any wire)."""
    return _single("I", wire)


def pauli(word: str, coeff: float = 1.0, wires=None) -> PauliSum:
    """The Pauli string ``word`` (letters "IXYZ"), letter k on ``wires[k]`` (default wire k).

    Example: ``pauli("ZIIZ") == Z(0) @ Z(3)``.
    """
    if not isinstance(word, str) or not word:
        raise ObservableError(f"a Pauli word must be a non-empty string, got {word!r}")
    bad = sorted(set(word.upper()) - set("IXYZ"))
    if bad:
        raise ObservableError(f"Pauli word {word!r} has letters {bad} outside 'IXYZ'")
    wires = tuple(range(len(word))) if wires is None else tuple(wires)
    if len(wires) != len(word):
        raise ObservableError(f"Pauli word {word!r} has {len(word)} letters but wires={wires}")
    seen = set()
    for w in wires:
        if w in seen:
            raise WireError(f"repeated wire {w!r} in wires={wires} of Pauli word {word!r}")
        seen.add(w)
    out = PauliSum._from_terms([(coeff, ())])
    for letter, wire in zip(word.upper(), wires):
        out = out @ _single(letter, wire)
    return out
