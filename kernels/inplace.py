"""In-place dense gates on large CPU states: ``slice_combine_p`` as an XLA FFI custom call.

XLA's CPU kernels write every gate's result to a new buffer, so a pass over a large state
streams two state-sized buffers; from 16 MiB per state the pair no longer fits a 32 MiB L3.
``inplace.cc`` applies a 1- or 2-qubit matrix to a batch of flat states in place (its result
aliased to its input, ``input_output_aliases={0: 0}``), vectorised with AVX2/FMA where the
compiler targets them, threads from OpenMP.

The lowering (:func:`lowering`) replaces :data:`qjaxrob.kernels.dense.slice_combine_p`'s
on the CPU for states of at least :data:`MIN_STATE_BYTES` per example (2**20 amplitudes at
complex128, 2**21 at complex64) with ``k <= 2``. Autodiff is unchanged: the primitive's
rules bind the primitive again, lowered the same way. Where XLA must keep the input alive
(a reverse pass saves it), XLA copies it first and the kernel runs on the copy.

The shared library is compiled on first use with ``$CXX`` (default ``c++``; :data:`FLAGS`)
against ``jax.ffi.include_dir()``, into ``$XDG_CACHE_HOME/qjaxrob/kernels`` (default
``~/.cache/qjaxrob/kernels``) under a name hashing the source, the compiler, the flags and
the jaxlib version. Without a compiler (a ``RuntimeWarning`` says so), or with
``QJAXROB_INPLACE=off``, XLA's kernels run (same values); :func:`status` says which and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import jax
import numpy as np
from jax.interpreters import mlir

__all__ = ["ENV_VAR", "FLAGS", "MIN_STATE_BYTES", "SOURCE", "available", "in_place", "lowering",
           "status"]

ENV_VAR = "QJAXROB_INPLACE"
"""``off`` (or ``0``, ``false``, ``no``) keeps XLA's kernels everywhere."""

MIN_STATE_BYTES = 16 * 2**20
"""Smallest state (bytes per example) whose gates run in place. At 8 MiB XLA's kernels were
still faster on the 2-core, 32 MiB-L3 development machine (``benchmarks/README.md``)."""

SOURCE = Path(__file__).with_name("inplace.cc")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
_TARGETS = {np.dtype(np.complex128): ("qjaxrob_inplace_gate_c128", "QjrInplaceGateC128"),
            np.dtype(np.complex64): ("qjaxrob_inplace_gate_c64", "QjrInplaceGateC64")}
_OFF = {"0", "off", "false", "no"}
_LOCK = threading.Lock()  # programs traced on several threads build and register once
_STATE = None  # (available, path or reason) once decided


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qjaxrob" / "kernels"


def _build() -> Path:
    """The compiled library (built now unless a matching one is cached)."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set $CXX)")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join((compiler,) + FLAGS).encode()
                         + jax.lib.__version__.encode()).hexdigest()[:16]
    target = _cache_root() / f"inplace-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        cmd = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(out)]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
        os.replace(out, target)  # atomic: concurrent builders leave one complete file
    return target


def _load():
    """``(True, path)`` once the library is built and its targets registered, else
    ``(False, reason)``; decided once per process (:data:`_STATE`)."""
    global _STATE
    with _LOCK:
        if _STATE is None:
            _STATE = _build_and_register()
        return _STATE


def _build_and_register():
    if os.environ.get(ENV_VAR, "").strip().lower() in _OFF:
        return False, f"${ENV_VAR} turns the in-place kernels off"
    try:
        path = _build()
        lib = ctypes.cdll.LoadLibrary(str(path))
        for name, symbol in _TARGETS.values():
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)),
                                        platform="cpu")
    except (OSError, RuntimeError, AttributeError) as e:
        warnings.warn(f"qjaxrob: in-place CPU kernels unavailable, using XLA's: {e}",
                      RuntimeWarning, stacklevel=4)
        return False, str(e)
    return True, str(path)


def available() -> bool:
    """Whether the in-place kernels are built and registered (building them if needed)."""
    return _load()[0]


def status() -> str:
    """The library's path, or why the XLA kernels run instead."""
    ok, detail = _load()
    return f"in-place CPU kernels: {detail}" if ok else f"XLA kernels ({detail})"


def in_place(nbytes: int) -> bool:
    """Whether a dense 1-2 qubit gate on a state of ``nbytes`` bytes (per example) runs
    in place on this machine."""
    return nbytes >= MIN_STATE_BYTES and available()


def _wires(shape):
    """``(n, sorted wires)`` of a grouped view ``(B, g0, 2, g1, ..., 2, gk)``."""
    bits = [int(s).bit_length() - 1 for s in shape[1:]]
    groups, wires, pos = bits[0::2], [], -1
    for g in groups[:-1]:
        pos += g + 1
        wires.append(pos)
    return pos + groups[-1] + 1, tuple(wires)


def _apply(x, m, *, k):
    n, wires = _wires(x.shape)
    name = _TARGETS[np.dtype(x.dtype)][0]
    flat = x.reshape(x.shape[0], 2**n)
    call = jax.ffi.ffi_call(name, jax.ShapeDtypeStruct(flat.shape, flat.dtype),
                            input_output_aliases={0: 0})
    w = wires + (0,) * (2 - k)
    out = call(flat, m, n=np.int64(n), k=np.int64(k), w0=np.int64(w[0]), w1=np.int64(w[1]))
    return out.reshape(x.shape)


def lowering(combine):
    """The CPU lowering rule of ``slice_combine_p``: in place where it pays (module docs),
    else ``combine`` (the XLA slice-and-combine) lowered as usual."""
    fallback = mlir.lower_fun(combine, multiple_results=False)
    inplace = mlir.lower_fun(_apply, multiple_results=False)

    def rule(ctx, x, m, *, k):
        aval = ctx.avals_in[0]
        nbytes = int(np.prod(aval.shape[1:])) * np.dtype(aval.dtype).itemsize
        if (k <= 2 and np.dtype(aval.dtype) in _TARGETS
                and ctx.avals_in[1].shape[0] in (1, aval.shape[0]) and in_place(nbytes)):
            return inplace(ctx, x, m, k=k)
        return fallback(ctx, x, m, k=k)

    return rule

