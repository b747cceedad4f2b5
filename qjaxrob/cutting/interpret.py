"""Fragment interpreter: a fragment's term rows run as ``lax.scan`` s over instruction tables,
so the compiled program (and the first call's compile time) does not grow with the
fragment's ops.

Every gate and every site operation of a fragment is an *instruction*: a ``2**k x 2**k``
matrix (``k = min(n, max(2, widest op))``) acting on a sorted *block* of k wires (a 1-qubit
op gets its nearest neighbour, ``M (x) I`` or ``I (x) M``).

**Shared prefix.** The ops outside the causal future of every site (not acting, directly or
through earlier ops, on a wire that a site touched before them) commute with all the sites
after them: they run first, once, on one unbatched ``(2**n,)`` state. Its leading constant
ops are simulated in NumPy at trace time (nothing compiled); the rest is one scan whose
step gathers the block's wires to the front (a NumPy permutation of the basis index per
distinct block), multiplies by the ``2**k x 2**k`` matrix and gathers back: one step body
for every block.

**Batched part.** The sites and their light cone run on ``(R, B, 2**n)``: ``R`` term rows
times ``B = 2**m`` measurement branches (``m`` measuring sites), as one scan whose step
picks each row's and branch's matrix from a table (static indices) and applies it with a
``lax.switch`` over the distinct blocks of this part (slice-and-combine kernels, no
gathers: the batched states are the large ones); a gather step would compile a little
faster but run slower, an unrolled part compiles slower (``benchmarks/cutting.md``,
"First call").

**Parameter-free fragments** (every op constant, NumPy QPD tables, no sharding, at most
``_NUMPY_WORK`` amplitude updates) run entirely in NumPy at trace time, in complex128, with
the same instructions and indices (:func:`_np_rows`): their values are constants of the
traced program, so XLA compiles only the contraction (``benchmarks/cutting.md``).

**Branches without concatenation.** All ``B`` branch slots start as copies of the prefix
state; the ``i``-th measuring site applies its Kraus operator ``K[bit_i(b)]`` to slot ``b``,
so slot ``b`` ends as the branch ``b`` and its weight is ``prod_i s[bit_i(b)]`` (the signed
Kraus pairs of :mod:`qjaxrob.cutting.qpd`; a unitary op has ``K_1 = 0``, weight 0).

**Pauli words** are read off the final states without matrices: for a word with X/Y mask
``x``, Z/Y mask ``z`` and ``y`` Y letters, ``<psi|P|psi> = Re(i**y sum_k
conj(psi[k ^ x]) (-1)**popcount(k & z) psi[k])`` (wire 0 the most significant bit); words
sharing ``x`` share one pass over the state.

Gate matrices: constant ops in NumPy (one-angle gates from their trig form
``A + cos(w t) B + sin(w t) C``, :class:`qjaxrob.ir.gates.GateSpec`); traced one-angle gates
together with one ``cos``/``sin``; other traced gates by one vmapped gate-table call per
(gate, block position) group; angles gathered from ``params``/``x`` (differentiable).
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.ir.circuit import Circuit
from qjaxrob.ir.gates import GATES
from qjaxrob.ir.observables import pauli_masks
from qjaxrob.kernels import grouped_shape, sign_table
from qjaxrob.lower.tables import (angle_rows, angle_values, block_of, const_matrix, embed,
                                  slot_values)

__all__ = ["run_rows"]

_NUMPY_WORK = 1 << 24
"""Most amplitude updates (ops x 2**n) of the constant prefix head simulated in NumPy at
trace time; beyond it the head runs in the compiled scan."""


# ---- static instruction lists (NumPy, cached per fragment structure) ---------------------
def _perm(block, n):
    """Basis-index permutation bringing ``block``'s wires to the front (and its inverse)."""
    rest = tuple(w for w in range(n) if w not in block)
    p = np.arange(2**n).reshape((2,) * n).transpose(block + rest).reshape(-1)
    return p, np.argsort(p)


@lru_cache(maxsize=256)
def _instructions(frag: Circuit, site_pos: tuple, branching: tuple):
    """``(k, pre, post, (perms, invs), bits, blocks)``: instructions ``(kind, ref, block_id,
    pos)`` (``kind`` "gate" with ``ref`` the op index, or "site" with ``ref`` the site slot) of the
    shared prefix and of the batched part; per-block permutations; each site's branch bit
    (``-1`` when it does not branch); the blocks (sorted wire tuples) by id."""
    n = frag.n_qubits
    slot = {p: i for i, p in enumerate(site_pos)}
    ops = [(i, op) for i, op in enumerate(frag.ops) if not op.is_marker or i in slot]
    k = min(n, max([2] + [len(op.wires) for _, op in ops]))
    blocks, pre, post, tainted = {}, [], [], set()
    for i, op in ops:
        block, pos = block_of(op.wires, n, k)
        bid = blocks.setdefault(block, len(blocks))
        if i in slot:
            tainted.update(op.wires)
            post.append(("site", slot[i], bid, pos))
        elif tainted.intersection(op.wires):
            tainted.update(op.wires)
            post.append(("gate", i, bid, pos))
        else:
            pre.append(("gate", i, bid, pos))
    # a fragment may hold no op at all (an idle wire, or the upstream end of a wire cut
    # placed before the wire's first gate): its state stays |0...0>, with no blocks
    perms = [_perm(b, n) for b in blocks]
    perms = tuple(np.stack(a).astype(np.int32) if a else np.zeros((0, 2**n), np.int32)
                  for a in ([p for p, _ in perms], [q for _, q in perms]))
    bits, m = [], 0
    for b in branching:
        bits.append(m if b else -1)
        m += bool(b)
    return k, tuple(pre), tuple(post), perms, tuple(bits), tuple(blocks)


def _gate_table(frag, instrs, k, params, x, dtype):
    """``(len(instrs), 2**k, 2**k)`` block matrices of the gate instructions (identity at
    site instructions). Constant ops are NumPy (:func:`qjaxrob.lower.tables.const_matrix`). Traced one-angle gates
    with a trig form (``A + cos(u) B + sin(u) C``, :mod:`qjaxrob.ir.gates`) are built together,
    one ``cos``/``sin`` for all of them; any other traced gate by one vmapped gate-table call
    per (gate, positions) group. The parts are assembled by one static gather."""
    big = 2**k
    table = np.tile(np.eye(big, dtype=np.complex128), (len(instrs), 1, 1))
    trig, groups = [], defaultdict(list)
    for s, (kind, ref, _, pos) in enumerate(instrs):
        if kind != "gate":
            continue
        op = frag.ops[ref]
        m = const_matrix(op)
        form = getattr(GATES.get(op.name), "trig", None) if m is None else None
        if m is not None:
            table[s] = embed(m, pos, k, np)
        elif form is not None and len(op.angles) == 1:
            trig.append((s, op.angles[0], form[0], [embed(b, pos, k, np) for b in form[1:]]))
        else:
            groups[(op.name, pos)].append((s, op))
    if not trig and not groups:
        return table.astype(dtype)
    z = slot_values(params, x, jnp.finfo(dtype).dtype)
    n_p, n_x = params.shape[0], x.shape[0]
    parts, where = [jnp.asarray(table, dtype)], np.arange(len(instrs))
    size = len(instrs)
    if trig:
        rows = angle_rows([(a,) for _, a, _, _ in trig], np.array([[w] for _, _, w, _ in trig]))
        u = angle_values(z, *rows, n_p, n_x)[:, 0]
        a, b, c = (jnp.asarray(np.stack([t[3][i] for t in trig]), dtype) for i in range(3))
        parts.append(a + jnp.cos(u).astype(dtype)[:, None, None] * b
                     + jnp.sin(u).astype(dtype)[:, None, None] * c)
        where[[t[0] for t in trig]] = size + np.arange(len(trig))
        size += len(trig)
    for (name, pos), members in groups.items():
        theta = angle_values(z, *angle_rows([op.angles for _, op in members]), n_p, n_x)
        fn = GATES[name].matrix_fn
        mats = jax.vmap(lambda t, fn=fn: fn(tuple(t[i] for i in range(t.shape[0])), dtype))(theta)
        parts.append(embed(mats.astype(dtype), pos, k, jnp))
        where[[s for s, _ in members]] = size + np.arange(len(members))
        size += len(members)
    return jnp.concatenate(parts)[where]


# ---- execution ----------------------------------------------------------------------------
def _gather_step(perms, invs, big):
    """Scan step of the shared prefix: block matrix ``m`` on block ``bid`` of ``state (D,)``
    by gathering the block's wires to the front and back (one body for every block)."""
    def body(state, xs):
        m, bid = xs
        s = jnp.take(state, perms[bid], axis=0).reshape(big, -1)
        return jnp.take((m @ s).reshape(-1), invs[bid], axis=0), None
    return body


def _const_head(frag, pre, k) -> int:
    """Length of the leading run of constant ops of the prefix that is simulated in NumPy
    (at most ``_NUMPY_WORK`` amplitude updates)."""
    n = frag.n_qubits
    head = 0
    while (head < len(pre) and frag.ops[pre[head][1]].is_constant
           and (head + 1) * 2**n <= _NUMPY_WORK):
        head += 1
    return head


def _np_prefix(frag, head, k, perms, invs):
    """``(2**n,)`` complex128 state after the constant instructions ``head`` (NumPy)."""
    n = frag.n_qubits
    state = np.zeros(2**n, np.complex128)
    state[0] = 1
    for _, ref, bid, pos in head:
        m = embed(const_matrix(frag.ops[ref]), pos, k, np)
        state = (m @ state[perms[bid]].reshape(2**k, -1)).reshape(-1)[invs[bid]]
    return state


def _block_apply(block, n):
    """``(state (R, B, 2**n), m (R, B, K, K)) -> state``: per-row-and-branch block matrices
    on the static sorted wires ``block`` (slice-and-combine: one elementwise pass)."""
    k = len(block)

    def apply(state, m):
        lead = state.shape[:-1]
        x = state.reshape(lead + grouped_shape(n, block))
        pad = (None,) * (k + 1)
        slices = []
        for i in range(2**k):
            idx = [Ellipsis]
            for j in range(k):
                idx += [slice(None), (i >> (k - 1 - j)) & 1]
            slices.append(x[tuple(idx + [slice(None)])])
        rows = [sum(m[..., r, c][(Ellipsis,) + pad] * slices[c] for c in range(2**k))
                for r in range(2**k)]

        def build(prefix):
            if len(prefix) == k:
                return rows[int("".join(map(str, prefix)) or "0", 2)]
            return jnp.stack([build(prefix + (0,)), build(prefix + (1,))],
                             axis=len(lead) + len(prefix) + 1)

        return build(()).reshape(state.shape)
    return apply


def _word_values(state, weights, words, n, xp=jnp):
    """``(R, W)``: ``sum_b weights[r, b] <psi_rb| P_w |psi_rb>`` for ``state (R, B, 2**n)``.

    Words sharing an X/Y mask ``x`` share one pass: ``q = sum_b w_b conj(psi_b[k ^ x])
    psi_b[k]`` (the flip is a static reverse of the state's axes), then every such word is
    ``Re(i**y q . s_w)`` with its sign vector ``s_w[k] = (-1)**popcount(k & z)``: one
    product with a ``(2**n, W_x)`` sign table. ``xp``: ``jnp`` (traced) or ``np`` (constant
    states, evaluated at trace time)."""
    xm, zm, phases = pauli_masks(words, n)
    lead = state.shape[:-1]
    groups = defaultdict(list)
    for w, xmask in enumerate(xm):
        groups[int(xmask)].append(w)
    cols, order = [], []
    for xmask, members in groups.items():
        axes = tuple(len(lead) + q for q in range(n) if (xmask >> (n - 1 - q)) & 1)
        flipped = xp.flip(state.reshape(lead + (2,) * n), axes).reshape(state.shape)
        q = xp.sum(weights[..., None] * (xp.conj(flipped) * state), axis=1)
        signs = sign_table(zm[members], n).T * phases[members]  # (2**n, W_x)
        cols.append(xp.real(q @ xp.asarray(signs, state.dtype)))
        order += members
    return xp.concatenate(cols, axis=1)[:, np.argsort(order)]


def _site_indices(post, rows, bits, n_ops):
    """Static ``(n_post, R, B)`` indices into ``[gate matrices; every site's (op, branch)
    Kraus matrices]`` and ``(n_sites, R, B)`` indices into the sites' flat sign tables."""
    n_rows = rows.shape[0]
    n_b = 2 ** sum(b >= 0 for b in bits)
    slots = np.arange(n_b)
    sel = [((slots >> b) & 1) if b >= 0 else np.zeros(n_b, int) for b in bits]
    offset = np.cumsum([len(post)] + [2 * o for o in n_ops])
    kraus = [offset[s] + 2 * rows[:, s, None] + sel[s][None, :] for s in range(len(bits))]
    idx = np.stack([kraus[ref] if kind == "site" else np.full((n_rows, n_b), i)
                    for i, (kind, ref, _, _) in enumerate(post)]) if post else None
    sign_off = np.cumsum([0] + [2 * o for o in n_ops])
    signs = [sign_off[s] + 2 * rows[:, s, None] + sel[s][None, :] for s in range(len(bits))
             if bits[s] >= 0]
    return idx, signs, n_b


def _np_rows(frag, post, k, perms, invs, state, site_ops, idx, sign_idx, n_b, n_rows, words):
    """``(R, len(words))`` float64 word values of a parameter-free fragment, all in NumPy
    at trace time (complex128): the batched part as in :func:`run_rows` (same instruction
    and sign indices), each instruction by gathering its block's wires to the front."""
    n = frag.n_qubits
    big = 2**k
    weights = np.ones((n_rows, n_b))
    if sign_idx:
        flat = np.concatenate([np.asarray(sg, np.float64).reshape(-1) for _, sg, _ in site_ops])
        for si in sign_idx:
            weights = weights * flat[si]
    state = np.broadcast_to(state, (n_rows, n_b, 2**n))
    if post:
        sites = [embed(np.asarray(kr, np.complex128),
                        next(p for kind, ref, _, p in post if kind == "site" and ref == s), k, np)
                 for s, (kr, _, _) in enumerate(site_ops)]
        table = np.concatenate([_gate_table(frag, post, k, None, None, np.complex128)]
                               + [t.reshape((-1, big, big)) for t in sites])
        for i, (_, _, bid, _) in enumerate(post):
            s = state[..., perms[bid]].reshape(n_rows, n_b, big, -1)
            state = (table[idx[i]] @ s).reshape(n_rows, n_b, -1)[..., invs[bid]]
    return _word_values(state, weights, words, n, np)


def run_rows(frag: Circuit, site_pos: tuple, site_ops: tuple, rows, words, params, x, dtype,
             constrain=None):
    """Values of ``words`` on every term row of fragment ``frag``: ``(R, len(words))`` real.

    Args:
        frag: the fragment circuit (site markers at ``site_pos`` are its op sites; other
            markers are ignored).
        site_pos: op positions of the op sites, in order.
        site_ops: per site ``(kraus (n_ops, 2, 2, 2), signs (n_ops, 2), branch)`` (qpd form).
        rows: NumPy ``(R, n_sites)`` ints, each row's op index at every site.
        words: local Pauli words ``((wire, letter), ...)``.
        params, x: 1-D real arrays (traced).
        dtype: complex dtype.
        constrain: optional function applied to the batched initial state ``(R, B, 2**n)``
            (a sharding constraint).
    """
    n = frag.n_qubits
    k, pre, post, (perms, invs), bits, blocks = _instructions(
        frag, tuple(site_pos), tuple(bool(b) for _, _, b in site_ops))
    real = jnp.finfo(dtype).dtype
    head = _const_head(frag, pre, k)
    rows = np.asarray(rows)
    n_ops = [ops[0].shape[0] for ops in site_ops]
    idx, sign_idx, n_b = _site_indices(post, rows, bits, n_ops)
    if (constrain is None and head == len(pre)
            and all(frag.ops[ref].is_constant for kind, ref, _, _ in post if kind == "gate")
            and all(isinstance(a, np.ndarray) for op in site_ops for a in op[:2])
            and (len(post) + 1) * rows.shape[0] * n_b * 2**n <= _NUMPY_WORK):
        state = _np_prefix(frag, pre, k, perms, invs)
        return _np_rows(frag, post, k, perms, invs, state, site_ops, idx, sign_idx, n_b,
                        rows.shape[0], words).astype(real)
    # the barrier keeps XLA from constant-folding a parameter-free fragment at compile time
    state = jax.lax.optimization_barrier(
        jnp.asarray(_np_prefix(frag, pre[:head], k, perms, invs), dtype))
    if pre[head:]:
        table = _gate_table(frag, pre[head:], k, params, x, dtype)
        bids = jnp.asarray([b for _, _, b, _ in pre[head:]], jnp.int32)
        state, _ = jax.lax.scan(_gather_step(jnp.asarray(perms), jnp.asarray(invs), 2**k),
                                state, (table, bids))
    state = jnp.broadcast_to(state, (rows.shape[0], n_b, 2**n))
    if constrain is not None:
        state = constrain(state)
    weights = np.ones((rows.shape[0], n_b), real)
    xp = np if all(isinstance(a, np.ndarray) for op in site_ops for a in op[:2]) else jnp
    if sign_idx:
        flat = xp.concatenate([sg.astype(real).reshape(-1) for _, sg, _ in site_ops])
        for si in sign_idx:
            weights = weights * flat[si]
    if post:
        sites = [embed(kr.astype(dtype), next(p for kind, ref, _, p in post
                                               if kind == "site" and ref == s), k, xp)
                 for s, (kr, _, _) in enumerate(site_ops)]
        gates = _gate_table(frag, post, k, params, x, dtype)
        xp = np if xp is np and isinstance(gates, np.ndarray) else jnp
        table = jnp.asarray(xp.concatenate([gates] + [t.reshape((-1,) + t.shape[-2:])
                                                      for t in sites]))
        used = sorted({b for _, _, b, _ in post})
        branches = [_block_apply(blocks[b], n) for b in used]
        local = jnp.asarray([used.index(b) for _, _, b, _ in post], jnp.int32)

        def body(s, xs):
            i, bid = xs
            m = table[i]
            if len(branches) == 1:
                return branches[0](s, m), None
            return jax.lax.switch(bid, branches, s, m), None

        state, _ = jax.lax.scan(body, state, (jnp.asarray(idx, jnp.int32), local))
    return _word_values(state, weights, words, n)
