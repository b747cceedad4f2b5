"""Sliding-window runs: fused blocks on consecutive wire pairs, walked by one scan.

A layer of a hardware-efficient ansatz fuses into blocks on ``(0, 1), (1, 2), ...,
(n-2, n-1)`` and, for a ring of entanglers, ``(n-1, 0)``: ``n`` blocks that differ only by a
shift of their wires. Unrolled, each is its own kernel on the full state, so the compiled
program (and its compile time, forwards and in the adjoint's backward walk) grows with the
qubit count. Here such a run is applied by one ``lax.scan`` whose step is the same for every
window:

* **Rotating layout.** Before the window on ``(w, w+1)`` the state's axes are the wires in
  the cyclic order ``w, w+1, ..., n-1, 0, ..., w-1``, so the window is always on the two
  leading axes. A step applies its ``4 x 4`` matrix there (a 4-term sum over rows of the
  ``(4, 2**(n-2))`` view) and moves the leading axis to the end (a static transpose that XLA
  fuses into the same pass), which puts the next window on the leading axes. A run that
  starts at wire ``s`` is entered by one static rotation of the axes and left by another
  (none when the run covers whole rings from wire 0).
* **Matrices.** The blocks' matrices are built vectorised by the interpreter's tables
  (:func:`qjaxrob.lower.interpreter.table_matrices`, on the sorted wires); a window whose
  sorted wires are ``(0, n-1)`` (the wrap-around ``(n-1, 0)``) gets its matrix with the two
  qubits exchanged (:func:`oriented`).

The run is a :class:`qjaxrob.lower.interpreter.Program` with ``start >= 0``; forward walk,
adjoint walk (:func:`adjoint_windows`: the same reversed step undoing each window and reading
its matrix's cotangent) and every autodiff order are ordinary JAX, so values and gradients
are those of the unrolled blocks up to rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.kernels import apply_matrix, in_place

__all__ = ["RING_MIN_BLOCKS", "adjoint_windows", "oriented", "run_windows", "window_runs",
           "window_wire"]

RING_MIN_BLOCKS = 18
"""Shortest run of consecutive windows walked by a scan in the adjoint's backward walk
(a hardware-efficient layer has one window per wire: from 18 qubits). Shorter runs stay
unrolled: the scan's step costs a transpose per window, which outweighs the compile time
it saves on states that fit in cache."""

_SWAP = np.array([0, 2, 1, 3])  # basis index of a 2-qubit matrix with its qubits exchanged


def window_wire(wires, n: int):
    """The first wire ``w`` of the window ``(w, w+1 mod n)`` that the sorted 2-wire
    ``wires`` form on an ``n``-qubit ring, or ``None`` (also for ``n < 3``, where the
    orientation of a pair is ambiguous)."""
    if n < 3 or len(wires) != 2:
        return None
    a, b = wires
    if b == a + 1:
        return a
    if (a, b) == (0, n - 1):
        return n - 1
    return None


def window_runs(nodes: tuple, n: int, min_blocks: int, is_block, make) -> tuple:
    """``nodes`` with every maximal run of at least ``min_blocks`` nodes for which
    ``is_block`` holds and whose wires form consecutive windows ``s, s+1, ...`` (mod ``n``)
    replaced by ``make(blocks, s)``. ``min_blocks <= 0`` disables it."""
    if min_blocks <= 0:
        return nodes
    out, run = [], []

    def flush():
        if len(run) >= min_blocks:
            out.append(make(tuple(run), window_wire(run[0].wires, n)))
        else:
            out.extend(run)
        run.clear()

    for node in nodes:
        w = window_wire(node.wires, n) if is_block(node) else None
        if w is None:
            flush()
            out.append(node)
            continue
        if run and w != (window_wire(run[-1].wires, n) + 1) % n:
            flush()
        run.append(node)
    flush()
    return tuple(out)


def oriented(mats, blocks: tuple, n: int):
    """``(B, 4, 4)`` block matrices on sorted wires as matrices on their windows
    ``(w, w+1 mod n)``: the wrap-around window's qubits exchanged."""
    flip = np.array([tuple(b.wires) == (0, n - 1) for b in blocks])
    if not flip.any():
        return mats
    swapped = mats[:, _SWAP][:, :, _SWAP]
    return jnp.where(jnp.asarray(flip)[:, None, None], swapped, mats)


def _rotate(flat, r: int, n: int):
    """A flat state whose axes are wires ``(c, ..., c-1)`` rotated by ``r`` axes: the
    first ``r`` axes moved to the end (a static transpose; ``r`` taken mod ``n``)."""
    r %= n
    if r == 0:
        return flat
    return flat.reshape(2**r, 2 ** (n - r)).T.reshape(-1)


def _apply(flat, m):
    """``m`` (4 x 4) on the two leading axes of a flat state (the dense kernel, whose
    transposes are one kernel and one contraction)."""
    n = flat.shape[0].bit_length() - 1
    return apply_matrix(flat.reshape((2,) * n), m, (0, 1)).reshape(-1)


def _unroll(state) -> int:
    """Windows per iteration of the adjoint walk's scan: 2 where the gates run in place
    (:mod:`qjaxrob.kernels.inplace`). An in-place kernel leaves its result in the buffer of
    the rotation before it, not in the loop carry's, so one window per iteration ends in a
    state-sized copy back; with two, the second rotation writes into the carry's buffer.
    With XLA's kernels one window per iteration is faster (n=18)."""
    return 2 if in_place(state.size * state.dtype.itemsize) else 1


def run_windows(state, mats, start: int):
    """Applies window matrices ``mats`` ``(B, 4, 4)`` (window ``j`` on wires
    ``(start + j, start + j + 1) mod n``, :func:`oriented`) to the ``(2,)*n`` ``state``."""
    n = state.ndim

    def step(flat, m):
        return _rotate(_apply(flat, m), 1, n), None

    flat, _ = jax.lax.scan(step, _rotate(state.reshape(-1), start, n), mats)
    return _rotate(flat, -(start + mats.shape[0]), n).reshape(state.shape)


def adjoint_windows(psi, lam, mats, start: int):
    """The adjoint method's walk back over :func:`run_windows`: ``psi`` (the state after
    the run) and ``lam`` (its cotangent state) are walked back window by window, undoing
    ``M_j`` on both; the cotangent of ``M_j`` is ``2 X_j`` with
    ``X_j[i, k] = sum conj(lam_j)_i (psi_{j-1})_k`` over the other wires (JAX's convention
    ``dL = Re sum(ct * dM)``). Returns ``(psi, lam, cts (B, 4, 4))`` at the run's start."""
    n = psi.ndim
    end = start + mats.shape[0]

    def step(carry, m):
        fp, fl = (_rotate(f, -1, n) for f in carry)  # this window on the leading axes
        undo = jnp.conj(m).T
        back, back_lam = _apply(fp, undo), _apply(fl, undo)
        # X_j = conj(lam_j) psi_{j-1}^T with lam_j = M_j lam_{j-1} (M_j unitary, as the
        # undo assumes): conj(M_j) times the cross matrix of the two undone states, so
        # no update waits for it (an in-place kernel would otherwise need a copy of lam_j)
        cross = jnp.conj(back_lam.reshape(4, -1)) @ back.reshape(4, -1).T
        return (back, back_lam), 2 * (jnp.conj(m) @ cross)

    carry = tuple(_rotate(v.reshape(-1), end, n) for v in (psi, lam))
    (fp, fl), cts = jax.lax.scan(step, carry, mats, reverse=True, unroll=_unroll(psi))
    fp, fl = (_rotate(f, -start, n).reshape(psi.shape) for f in (fp, fl))
    return fp, fl, cts
