"""qjaxrob on one GPU: the statevector path against the memory-bandwidth floor and peers.

Rows (HEA = hardware-efficient ansatz, RY and RZ on every wire then a CNOT ring, L=4,
observable <Z0>, complex64 unless a row says otherwise), each for the XLA and the Pallas
kernel sets (``QJAXROB_KERNELS``, switched with ``jax.clear_caches()`` in between):

* ``bandwidth``: the floor, measured in the same run: a jnp read+write of a 2 GiB array.
* ``check``: Pallas against XLA on the device (forward, backprop and adjoint gradients,
  n=14) and the number of Triton kernels in the compiled program (proof that they ran).
* ``memory``: state-sized buffers held by the compiled forward at n=26 (target <= 3).
* ``kernel``: one kernel application at n=26 (dense k=1..4, diagonal, permutation), time
  per pass and fraction of the floor; writes a fusion cost table in the format of
  ``qjaxrob/gpu_costs.json`` to ``gpu_costs.json`` (copy it there once it looks right),
  and sweeps the Pallas ``BLOCK`` / ``NUM_WARPS``.
* ``forward``: n = 16..32 (complex64), complex128 at n = 24, 28; cuStateVec gate by gate
  (ctypes, when its wheel is on ``$SITE``), qujax and naive JAX (when installed).
* ``grad``: adjoint (``diff="adjoint"``) n = 16..26 and backprop n = 16..24.
* ``batched``: n=10, B=4096, forward and gradient of the mean (vmap), qujax beside.
* ``density`` n = 8..14, ``trajectories``, ``cutting``, ``first_call`` (compile + run).

Every case is guarded by the time budget (``BENCH_BUDGET`` seconds) and a try/except, so
one failure costs one row. Output: JSON lines on stdout, ``gpu.json`` (all rows),
``gpu.md`` (Markdown table) and ``gpu_costs.json`` in ``$OUT`` (default
``benchmarks/results``). ``--smoke`` runs tiny sizes (a CPU check of the script itself).

Usage on the GPU machine (see benchmarks/README.md, section "GPU")::

    BENCH_BUDGET=300 python3 benchmarks/gpu.py [--sections bw,check,kernel,forward,...]
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob import kernels as xla_kernels
from qjaxrob.kernels import pallas
from qjaxrob.qml import hardware_efficient

if __package__:
    from benchmarks import harness
else:  # run by path (python3 benchmarks/gpu.py): the harness beside it
    import harness

SECTIONS = ("bw", "check", "memory", "kernel", "forward", "grad", "batched", "density", "traj", "cut",
            "first")
KERNEL_SETS = ("xla", "pallas")
T0 = time.time()
ROWS: list[dict] = []
CFG: dict = {}


# ---- harness --------------------------------------------------------------------------
def left() -> float:
    return CFG["budget"] - (time.time() - T0)


def emit(**row):
    row["t"] = round(time.time() - T0, 1)
    ROWS.append(row)
    harness.print_row(row, default=str)


def timeit(fn, *args, min_time=0.3, max_reps=20):
    """``(out, first_s, median_s, min_s)``: the first call (compile + run) and the median
    of at least 3 more, each ended by ``block_until_ready``."""
    out, first, _ = harness.timed_call(fn, *args)
    ts = harness.call_times(fn, *args, min_reps=3, min_time=min_time, max_reps=max_reps)
    return out, first, statistics.median(ts), min(ts)


def case(name, need=5.0):
    def deco(f):
        def run(*a, **k):
            if left() < need:
                emit(case=name, args=repr(a), kw=repr(k), skipped="deadline")
                return None
            try:
                return f(*a, **k)
            except Exception as e:  # noqa: BLE001 - one failure costs one row
                emit(case=name, args=repr(a), kw=repr(k), error=f"{type(e).__name__}: {str(e)[:300]}")
                return None
        return run
    return deco


def use_kernels(name: str):
    """Selects a kernel set for everything traced from now on (trace-time switch)."""
    os.environ["QJAXROB_KERNELS"] = name
    jax.clear_caches()


def triton_calls(fn, *args) -> int:
    """Triton kernels in the lowered program (0 off a GPU, where Pallas is interpreted)."""
    return fn.lower(*args).as_text().count("__gpu$xla.gpu.triton")


def pallas_ops(fn, *args) -> int:
    """Pallas kernel applications in the traced program (proof of the kernel choice)."""
    return str(jax.make_jaxpr(fn)(*args)).count("qjaxrob_pallas_apply")


def floor_ms(n: int, dtype) -> float | None:
    """One read + one write of the state at the measured copy bandwidth."""
    bw = CFG.get("GBps")
    return None if not bw else 2 * 2**n * jnp.dtype(dtype).itemsize / (bw * 1e9) * 1e3


def hea_params(n, L, dtype=jnp.float32, seed=0):
    return jnp.asarray(np.random.default_rng(seed + n).uniform(-np.pi, np.pi, 2 * n * L), dtype)


def real_of(dt):
    return jnp.float64 if dt == jnp.complex128 else jnp.float32


# ---- sections -----------------------------------------------------------------------------
@case("bandwidth")
def bandwidth(n):
    x = jnp.ones((2**n,), jnp.complex64)
    f = jax.jit(lambda v, s: v * s)
    _, _, med, mn = timeit(f, x, jnp.complex64(1.0000001), min_time=0.2)
    nbytes = 2 * x.nbytes
    CFG["GBps"] = nbytes / med / 1e9
    emit(case="bandwidth", n=n, bytes=nbytes, median_ms=med * 1e3, min_ms=mn * 1e3,
         GBps=nbytes / med / 1e9, GBps_best=nbytes / mn / 1e9)


@case("check", need=20)
def check(n, L=2):
    """Pallas against XLA on this device: forward and both gradients of the HEA."""
    c = hardware_efficient(n, L)
    p = hea_params(n, L, jnp.float64)
    out = {}
    for ks in KERNEL_SETS:
        use_kernels(ks)
        fwd = jax.jit(lambda p: qjr.expval(c, qjr.Z(0), p, dtype=jnp.complex128))
        bp = jax.jit(jax.grad(lambda p: qjr.expval(c, qjr.Z(0), p, dtype=jnp.complex128)))
        adj = jax.jit(jax.grad(lambda p: qjr.expval(c, qjr.Z(0), p, dtype=jnp.complex128,
                                                     diff="adjoint")))
        out[ks] = [np.asarray(f(p)) for f in (fwd, bp, adj)]
        calls = [triton_calls(f, p) for f in (fwd, bp, adj)]
        ops = [pallas_ops(f, p) for f in (fwd, bp, adj)]
        diff = [float(np.max(np.abs(a - b))) for a, b in zip(out[ks], out["xla"])]
        emit(case="check", kernels=ks, n=n, L=L, triton_calls=calls, pallas_ops=ops,
             max_diff_vs_xla=dict(zip(("forward", "backprop", "adjoint"), diff)))


@case("kernel", need=15)
def kernel(n, ks, kind, k, reps=20, block=None, warps=None):
    """``reps`` applications of one kernel in one jit: time per pass."""
    use_kernels(ks)
    if block is not None:
        pallas.BLOCK, pallas.NUM_WARPS = block, warps
    rng = np.random.default_rng(k)
    dt = jnp.complex64
    wires_list = [tuple((i * 3 + j * 5) % n for j in range(k)) for i in range(reps)]
    km = pallas.apply_matrix if ks == "pallas" else xla_kernels.apply_matrix
    kd = pallas.apply_diagonal if ks == "pallas" else xla_kernels.apply_diagonal
    if kind == "dense":
        q, _ = np.linalg.qr(rng.normal(size=(2**k, 2**k)) + 1j * rng.normal(size=(2**k, 2**k)))
        op = jnp.asarray(q, dt)
        step = lambda s, w: km(s, op, w)
    elif kind == "diagonal":
        op = jnp.asarray(np.exp(1j * rng.uniform(0, 6, 2**k)), dt)
        step = lambda s, w: kd(s, op, w)
    else:  # permutation (CNOT-like): always the XLA gather kernel
        from qjaxrob.kernels.structured import apply_permutation
        perm = tuple(range(2**k - 2)) + (2**k - 1, 2**k - 2)
        step = lambda s, w: apply_permutation(s, perm, None, w)

    @jax.jit
    def run(s):
        for w in wires_list:
            s = step(s, w)
        return s

    s0 = jnp.zeros((2,) * n, dt).at[(0,) * n].set(1.0)
    _, first, med, _ = timeit(run, s0)
    per = med / reps
    fl = floor_ms(n, dt)
    emit(case="kernel", kernels=ks, kind=kind, k=k, n=n, block=block, warps=warps,
         per_pass_ms=per * 1e3, GBps=2 * 8 * 2**n / per / 1e9,
         fraction_of_floor=None if fl is None else fl / (per * 1e3), first_s=first)
    if block is not None:
        pallas.BLOCK, pallas.NUM_WARPS = CFG["block0"]
    return per


def cost_tables(times: dict) -> dict:
    """``gpu_costs.json``-format tables from measured per-pass times (relative to dense
    k=1); ``max_qubits`` = the widest dense k whose pass costs at most 1.5 k=1 passes."""
    out = {}
    for ks, t in times.items():
        base = t.get(1)
        if not base:
            continue
        cost = {str(key): round(v / base, 3) for key, v in t.items() if v}
        widths = [k for k in (1, 2, 3, 4) if k in t and t[k] and t[k] / base <= 1.5]
        out[ks] = {"max_qubits": max(widths), "cost": cost,
                   "source": f"measured by benchmarks/gpu.py on {CFG['device']}, n={CFG['kn']}, "
                             f"complex64, jax {jax.__version__}"}
    return {"gpu": out}


@case("memory", need=20)
def memory(ks, n, L=4):
    """State-sized buffers the compiled forward holds on the device (XLA's buffer
    assignment: temporaries + output, in units of one state)."""
    use_kernels(ks)
    p = hea_params(n, L)
    stats = jax.jit(qjr_fn(n, L, jnp.complex64)).lower(p).compile().memory_analysis()
    state = 2**n * 8
    emit(case="memory", kernels=ks, n=n, states_held=(stats.temp_size_in_bytes
                                                       + stats.output_size_in_bytes) / state,
         temp_bytes=stats.temp_size_in_bytes, alias_bytes=stats.alias_size_in_bytes)


def qjr_fn(n, L, dt, diff="backprop"):
    c = hardware_efficient(n, L)
    return lambda p: qjr.expval(c, qjr.Z(0), p, dtype=dt, diff=diff)


@case("forward", need=15)
def forward(ks, n, L=4, dt=jnp.complex64):
    use_kernels(ks)
    p = hea_params(n, L, real_of(dt))
    f = jax.jit(qjr_fn(n, L, dt))
    out, first, med, mn = timeit(f, p)
    passes = None if CFG.get("GBps") is None else med * 1e3 / floor_ms(n, dt)
    emit(case="forward", engine="qjaxrob", kernels=ks, n=n, L=L, dtype=jnp.dtype(dt).name,
         value=float(out), median_ms=med * 1e3, min_ms=mn * 1e3, first_s=first,
         floor_passes=passes, triton_calls=triton_calls(f, p), pallas_ops=pallas_ops(f, p))
    return float(out)


def naive_fn(n, L, dt):
    def a1(s, u, q):
        return jnp.moveaxis(jnp.tensordot(u, s, axes=((1,), (q,))), 0, q)

    cx = jnp.asarray(np.eye(4)[[0, 1, 3, 2]].reshape(2, 2, 2, 2), dt)

    def f(p):
        s = jnp.zeros((2,) * n, dt).at[(0,) * n].set(1.0)
        for layer in range(L):
            for q in range(n):
                t = p[layer * 2 * n + q]
                c_, s_ = jnp.cos(t / 2), jnp.sin(t / 2)
                s = a1(s, jnp.stack([jnp.stack([c_, -s_]), jnp.stack([s_, c_])]).astype(dt), q)
            for q in range(n):
                e = jnp.exp(-0.5j * p[layer * 2 * n + n + q].astype(dt))
                s = a1(s, jnp.diag(jnp.stack([e, jnp.conj(e)])), q)
            for q in range(n):
                r = (q + 1) % n
                s = jnp.moveaxis(jnp.tensordot(cx, s, axes=((2, 3), (q, r))), (0, 1), (q, r))
        pr = jnp.abs(s) ** 2
        return jnp.sum(pr[0]) - jnp.sum(pr[1])

    return f


def qujax_circuit(n, L, encode=False):
    import qujax

    gs, qi, pi = [], [], []
    off = n if encode else 0
    if encode:
        for q in range(n):
            gs.append("Ry"), qi.append([q]), pi.append([q])
    for layer in range(L):
        for r, g in enumerate(("Ry", "Rz")):
            for q in range(n):
                gs.append(g), qi.append([q]), pi.append([off + layer * 2 * n + r * n + q])
        for q in range(n):
            gs.append("CX"), qi.append([q, (q + 1) % n]), pi.append([])
    p2s = qujax.get_params_to_statetensor_func(gs, qi, pi, n)
    s2e = qujax.get_statetensor_to_expectation_func([["Z"]], [[0]], [1.0])
    return lambda p: s2e(p2s(p / jnp.pi))  # qujax angles are in half turns


@case("peer", need=15)
def peer(engine, n, L=4, ref=None):
    p = hea_params(n, L)
    f = jax.jit(naive_fn(n, L, jnp.complex64) if engine == "naive" else qujax_circuit(n, L))
    out, first, med, mn = timeit(f, p)
    emit(case="forward", engine=engine, n=n, L=L, dtype="complex64", value=float(out),
         diff=None if ref is None else abs(float(out) - ref), median_ms=med * 1e3,
         min_ms=mn * 1e3, first_s=first)


@case("custatevec", need=20)
def custatevec(n, L=4, ref=None):
    """cuStateVec applying the 12n gates one by one (ctypes; wheel unpacked on $SITE)."""
    import cupy as cp

    for name in ("libcublasLt.so.13", "libcublas.so.13"):
        hits = glob.glob(f"{sys.prefix}/lib/python3*/site-packages/nvidia/**/{name}", recursive=True)
        hits += glob.glob(f"/usr/local/cuda*/lib64/{name}")
        if hits:
            ctypes.CDLL(hits[0], mode=ctypes.RTLD_GLOBAL)
    site = os.environ.get("SITE", "/tmp/site")
    lib = ctypes.CDLL(glob.glob(f"{site}/cuquantum/lib/libcustatevec.so*")[0])
    handle = ctypes.c_void_p()
    assert lib.custatevecCreate(ctypes.byref(handle)) == 0
    c32 = 4  # CUDA_C_32F
    sv = cp.zeros(2**n, cp.complex64)
    p = np.asarray(hea_params(n, L), np.float64)
    gates = []
    for layer in range(L):
        for r in range(2):
            for q in range(n):
                t = p[layer * 2 * n + r * n + q]
                m = (np.array([[np.cos(t / 2), -np.sin(t / 2)], [np.sin(t / 2), np.cos(t / 2)]])
                     if r == 0 else np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)]))
                gates.append((np.ascontiguousarray(m, np.complex64), q, None))
        for q in range(n):
            gates.append((np.array([[0, 1], [1, 0]], np.complex64), (q + 1) % n, q))
    # wire q is the q-th most significant bit: cuStateVec index bit n-1-q
    prepared = [(m, (ctypes.c_int32 * 1)(n - 1 - t),
                 None if c is None else (ctypes.c_int32 * 1)(n - 1 - c), 0 if c is None else 1)
                for m, t, c in gates]

    def run():
        sv[:] = 0
        sv[0] = 1
        for m, tt, cc, nc in prepared:
            st = lib.custatevecApplyMatrix(
                handle, ctypes.c_void_p(sv.data.ptr), c32, ctypes.c_uint32(n),
                m.ctypes.data_as(ctypes.c_void_p), c32, 1, 0, tt, ctypes.c_uint32(1), cc, None,
                ctypes.c_uint32(nc), 0, None, ctypes.c_size_t(0))
            if st:
                raise RuntimeError(f"custatevecApplyMatrix status {st}")
        cp.cuda.Device().synchronize()

    run()
    ts = harness.call_times(run, min_reps=5)
    pr = cp.abs(sv.reshape(2, -1)) ** 2
    val = float(pr[0].sum() - pr[1].sum())
    lib.custatevecDestroy(handle)
    emit(case="forward", engine="custatevec", n=n, L=L, dtype="complex64", value=val,
         diff=None if ref is None else abs(val - ref), median_ms=statistics.median(ts) * 1e3,
         min_ms=min(ts) * 1e3, gates=len(prepared))


@case("gradient", need=20)
def gradient(ks, n, diff, L=4, dt=jnp.complex64, ref=None):
    use_kernels(ks)
    p = hea_params(n, L, real_of(dt))
    f = jax.jit(jax.grad(qjr_fn(n, L, dt, diff)))
    out, first, med, mn = timeit(f, p)
    out = np.asarray(out)
    emit(case="gradient", kernels=ks, diff=diff, n=n, L=L, dtype=jnp.dtype(dt).name,
         max_diff=None if ref is None else float(np.max(np.abs(out - ref))),
         median_ms=med * 1e3, min_ms=mn * 1e3, first_s=first)
    return out


@case("batched", need=20)
def batched(engine, n, B, grad, L=4, ks="xla"):
    p = hea_params(n, L)
    xs = jnp.asarray(np.random.default_rng(1).uniform(-np.pi, np.pi, (B, n)), jnp.float32)
    if engine == "qjaxrob":
        use_kernels(ks)
        enc = qjr.Circuit(n)
        for q in range(n):
            enc = enc.ry(q, qjr.inp(q))
        c = enc + hardware_efficient(n, L)
        one = lambda p, x: qjr.expval(c, qjr.Z(0), p, x)
    else:
        circ = qujax_circuit(n, L, encode=True)
        one = lambda p, x: circ(jnp.concatenate([x, p]))
    fwd = jax.vmap(one, in_axes=(None, 0))
    f = jax.jit(jax.grad(lambda p, xs: jnp.mean(fwd(p, xs)))) if grad else jax.jit(fwd)
    out, first, med, mn = timeit(f, p, xs)
    emit(case="batched_grad" if grad else "batched", engine=engine,
         kernels=ks if engine == "qjaxrob" else None, n=n, B=B, L=L,
         checksum=float(np.sum(np.asarray(out))), median_ms=med * 1e3, min_ms=mn * 1e3,
         first_s=first)


@case("density", need=10)
def density(n, L=2, p_noise=0.01):
    c = qjr.noise.insert(hardware_efficient(n, L), "depolarizing", after="each_gate", p=p_noise)
    p = hea_params(n, L)
    f = jax.jit(lambda p: qjr.expval(c, qjr.Z(0), p, mixed=True))
    out, first, med, _ = timeit(f, p, min_time=0.2, max_reps=5)
    emit(case="density", n=n, L=L, value=float(out), median_ms=med * 1e3, first_s=first,
         floor_ms=floor_ms(2 * n, jnp.complex64))


@case("trajectories", need=10)
def trajectories(n, T, L=2, p_noise=0.01):
    c = qjr.noise.insert(hardware_efficient(n, L), "depolarizing", after="each_gate", p=p_noise)
    p = hea_params(n, L)
    f = jax.jit(lambda p, k: qjr.expval(c, qjr.Z(0), p, trajectories=T, key=k))
    out, first, med, _ = timeit(f, p, jax.random.key(0), min_time=0.2, max_reps=5)
    emit(case="trajectories", n=n, T=T, L=L, value=float(out), median_ms=med * 1e3,
         first_s=first)


@case("cutting", need=10)
def cutting(m, L, ncuts):
    n = 2 * m
    c = qjr.Circuit(n)
    k = 0
    for layer in range(L):
        for q in range(n):
            c = c.ry(q, qjr.param(k))
            k += 1
        for q in list(range(m - 1)) + list(range(m, n - 1)):
            c = c.cnot(q, q + 1)
        if layer < ncuts:
            c = c.cz(m - 1, m, cut=True)
    p = jnp.asarray(np.random.default_rng(3).uniform(-np.pi, np.pi, k), jnp.float32)
    obs = qjr.Z(0) @ qjr.Z(n - 1)
    cc = qjr.cutting.partition(c)
    f = jax.jit(lambda p: qjr.cutting.expval(cc, obs, p))
    out, first, med, _ = timeit(f, p)
    uncut = float(jax.jit(lambda p: qjr.expval(c, obs, p))(p))
    emit(case="cutting_exact", m=m, L=L, cuts=ncuts, value=float(out), uncut=uncut,
         terms=int(cc.n_subexperiments), median_ms=med * 1e3, first_s=first)


@case("first_call", need=30)
def first_call(n, L, what, ks="xla"):
    use_kernels(ks)
    p = hea_params(n, L)
    fn = qjr_fn(n, L, jnp.complex64, "adjoint" if what == "adjoint" else "backprop")
    fn = jax.jit(fn if what == "forward" else jax.grad(fn))
    emit(case="first_call", kernels=ks, n=n, L=L, what=what,
         seconds=harness.timed_call(fn, p)[1])


# ---- report -------------------------------------------------------------------------------
COLUMNS = ("case", "engine", "kernels", "kind", "k", "diff", "what", "n", "B", "T", "dtype",
           "median_ms", "per_pass_ms", "floor_passes", "fraction_of_floor", "GBps", "seconds",
           "first_s", "states_held", "triton_calls", "pallas_ops", "max_diff", "max_diff_vs_xla", "error", "skipped")


def markdown(rows) -> str:
    cols = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]

    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v).replace("|", "/")

    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |"
              for r in rows if r.get("case") != "env"]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default=os.environ.get("BENCH_SECTIONS", ",".join(SECTIONS)))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (checks the script on CPU)")
    ap.add_argument("--peers", type=int, default=int(os.environ.get("PEERS", "1")))
    args = ap.parse_args(argv)
    harness.enable_x64()
    sections = args.sections.split(",")
    smoke = args.smoke
    CFG["budget"] = float(os.environ.get("BENCH_BUDGET", "300"))
    CFG["block0"] = (pallas.BLOCK, pallas.NUM_WARPS)
    CFG["device"] = str(jax.devices()[0].device_kind)
    default_out = "/tmp/qjaxrob-gpu-smoke" if smoke else Path(__file__).with_name("results")
    out_dir = Path(os.environ.get("OUT") or default_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    kernel_sets = ("xla",) if smoke else KERNEL_SETS
    emit(case="env", jax=jax.__version__, backend=jax.default_backend(), device=CFG["device"],
         devices=len(jax.devices()), python=sys.version.split()[0], sections=sections,
         smoke=smoke, pallas_block=pallas.BLOCK, pallas_warps=pallas.NUM_WARPS)

    if "bw" in sections:
        bandwidth(16 if smoke else 28)
    if "check" in sections:
        check(4 if smoke else 14)
    if "memory" in sections:
        for ks in kernel_sets:
            memory(ks, 12 if smoke else 26)
    if "kernel" in sections:
        kn = CFG["kn"] = 12 if smoke else 26
        times = {}
        for ks in kernel_sets:
            t = times.setdefault(ks, {})
            for k in (1, 2, 3, 4):
                t[k] = kernel(kn, ks, "dense", k)
            t["diagonal"] = kernel(kn, ks, "diagonal", 2)
            t["permutation"] = kernel(kn, ks, "permutation", 2)
        if "pallas" in kernel_sets:
            for block in (1024, 4096, 16384):
                for warps in (4, 8):
                    kernel(kn, "pallas", "dense", 2, block=block, warps=warps)
        (out_dir / "gpu_costs.json").write_text(json.dumps(cost_tables(times), indent=2))
    if "forward" in sections:
        for n in ((8, 10) if smoke else (16, 20, 24, 26, 28, 30, 32)):
            ref = None
            for ks in kernel_sets:
                val = forward(ks, n)
                ref = val if ref is None else ref
            if args.peers and not smoke and n <= 28:
                custatevec(n, ref=ref)
            if args.peers and n <= 24:
                peer("qujax", n, ref=ref)
                peer("naive", n, ref=ref)
        for n in ((8,) if smoke else (24, 28)):
            for ks in kernel_sets:
                forward(ks, n, dt=jnp.complex128)
    if "grad" in sections:
        for n in ((6, 8) if smoke else (16, 20, 24, 26)):
            ref = None
            for ks in kernel_sets:
                out = gradient(ks, n, "adjoint", ref=ref)
                ref = out if ref is None else ref
                if n <= (8 if smoke else 24):
                    gradient(ks, n, "backprop", ref=ref)
    if "batched" in sections:
        n, B = (6, 64) if smoke else (10, 4096)
        for grad in (False, True):
            for ks in kernel_sets:
                batched("qjaxrob", n, B, grad, ks=ks)
            if args.peers:
                batched("qujax", n, B, grad)
    if "density" in sections:
        for n in ((4, 6) if smoke else (8, 10, 12, 13, 14)):
            density(n)
    if "traj" in sections:
        trajectories(*((6, 20) if smoke else (12, 1000)))
        if not smoke:
            trajectories(20, 100)
    if "cut" in sections:
        cutting(*((3, 2, 1) if smoke else (10, 4, 2)))
        if not smoke:
            cutting(12, 4, 3)
    if "first" in sections:
        for ks in kernel_sets:
            first_call(10, 10, "forward", ks=ks)
            first_call(8 if smoke else 16, 4, "adjoint", ks=ks)
        if not smoke:
            first_call(10, 50, "forward")
            first_call(20, 4, "forward")
    emit(case="done", total_s=time.time() - T0)
    (out_dir / "gpu.json").write_text(json.dumps(ROWS, indent=1, default=str))
    table = markdown(ROWS)
    (out_dir / "gpu.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
