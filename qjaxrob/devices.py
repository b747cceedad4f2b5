"""Where batched work runs: the devices lent to a computation, and a batch axis laid over them.

A batch axis (restarts, inputs, clients, seeds, QPD terms, noise levels: the leading axis
of a ``vmap``) is laid over ``k`` devices with JAX's own sharding: the arrays are placed with
``NamedSharding(Mesh(devices, (axis,)), PartitionSpec(axis))`` and the jitted, vmapped
program then runs partitioned by XLA, unchanged from host devices on one CPU to many GPUs.
A batch whose length is not a multiple of ``k`` is padded with copies of its last row, and
the padding is dropped from the results (:func:`over`). With at most one device nothing
is placed: the call is the plain one (the same compiled program, bit-identical results).

Which devices to use is the caller's to say: an explicit ``devices=`` argument, or
:func:`use`, a context (per thread, a ``contextvars`` variable) that the study runner sets
around each unit. Functions with a ``devices=None`` argument (``attacks.invert``,
``attacks.attack_model``, ``defenses.qdp_utility``, ``qml.landscape.gradient_variance``,
:func:`over`) then use :func:`in_use`; ``FedConfig(shard=True)`` uses it too (else all
devices).

Work that does not partition (a ``while_loop`` whose carry indexes the batch) is laid
over devices as equal shares instead, one thread per share pinned with
``jax.default_device`` (:func:`in_shares`). On one CPU,
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8 devices to test with.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from qjaxrob.errors import ParameterError, QjrTypeError

__all__ = ["check_devices", "constraint", "in_shares", "in_use", "mesh", "over", "pad",
           "sharding", "use"]

_IN_USE: contextvars.ContextVar[tuple] = contextvars.ContextVar("qjaxrob_devices",
                                                                default=())


def check_devices(devices) -> tuple:
    """``devices`` as a tuple of distinct ``jax.Device`` (``None``: ``()``, no placement).

    Raises:
        QjrTypeError: not a sequence of ``jax.Device``.
        ParameterError: a device repeated.
    """
    if devices is None:
        return ()
    if isinstance(devices, jax.Device | str) or not isinstance(devices,
                                                               Sequence | np.ndarray):
        raise QjrTypeError(f"devices must be a sequence of jax.Device or None, got "
                           f"{devices!r}")
    out = tuple(np.asarray(devices, dtype=object).ravel())
    bad = [d for d in out if not isinstance(d, jax.Device)]
    if bad:
        raise QjrTypeError(f"devices must be jax.Device objects, got {bad[0]!r}")
    if len(set(out)) != len(out):
        raise ParameterError(f"devices repeats a device: {[str(d) for d in out]}")
    return out


@contextlib.contextmanager
def use(devices):
    """Within the block (this thread or task), :func:`in_use` returns ``devices``."""
    token = _IN_USE.set(check_devices(devices))
    try:
        yield
    finally:
        _IN_USE.reset(token)


def in_use() -> tuple:
    """The devices set by the innermost :func:`use` of this thread (``()`` outside one)."""
    return _IN_USE.get()


def mesh(devices, axis: str = "batch") -> Mesh:
    """A 1-D mesh with axis ``axis`` over ``devices``."""
    devices = check_devices(devices)
    if not devices:
        raise ParameterError("a mesh needs at least one device, got none")
    return Mesh(np.asarray(devices, dtype=object), (axis,))


def sharding(m: Mesh) -> NamedSharding:
    """The sharding of a leading batch axis over the first axis of mesh ``m`` (the other
    axes of the array, and of the mesh, replicated)."""
    return NamedSharding(m, PartitionSpec(m.axis_names[0]))


def constraint(m: Mesh | None) -> Callable | None:
    """Inside ``jit``: a function that constrains an array's leading axis to lie over the
    first axis of ``m`` (``with_sharding_constraint``); ``None`` when ``m`` is ``None``."""
    if m is None:
        return None
    return lambda a: jax.lax.with_sharding_constraint(a, sharding(m))


def pad(tree, size: int):
    """Every array leaf of ``tree`` with its leading axis extended to ``size`` by copies of
    its last row (a copy of real input: no zeros that a computation might divide by).
    NumPy leaves stay NumPy (usable as static data inside ``jit``)."""

    def one(a):
        extra = size - a.shape[0]
        if extra <= 0:
            return a
        xp = np if isinstance(a, np.ndarray) else jnp
        return xp.concatenate([a, xp.repeat(a[-1:], extra, axis=0)])

    return jax.tree_util.tree_map(one, tree)


def _batch_length(tree) -> int:
    sizes = {np.shape(a)[0] if np.ndim(a) else None for a in jax.tree_util.tree_leaves(tree)}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        raise ParameterError(f"the batched arguments need one non-empty leading axis, got "
                             f"leading lengths {sorted(map(str, sizes))}")
    return sizes.pop()


def over(fn: Callable, *batched, devices=None, axis: str = "batch"):
    """``fn(*batched)`` with the leading axis of every array in ``batched`` laid over
    ``devices`` (default :func:`in_use`).

    ``fn`` maps batch-leading arrays to batch-leading outputs, row by row (a jitted
    ``vmap``: XLA partitions it over the placed inputs); anything else it needs it
    closes over (replicated). With two or more devices the batch (length ``n``) is padded
    to a multiple of their number (:func:`pad`), placed with :func:`sharding`, and every
    output leaf is trimmed back to ``n`` rows. With at most one device this is
    ``fn(*batched)``.

    Raises:
        ParameterError: the batched arguments have different or no leading lengths; an
            output of ``fn`` is not batch-leading (e.g. a mean over the batch).
    """
    devices = in_use() if devices is None else check_devices(devices)
    if len(devices) <= 1:
        return fn(*batched)
    n = _batch_length(batched)
    k = len(devices)
    size = -(-n // k) * k
    out = fn(*jax.device_put(pad(batched, size), sharding(mesh(devices, axis))))
    leading = {np.shape(a)[:1] for a in jax.tree_util.tree_leaves(out)}
    if leading - {(size,)}:
        raise ParameterError(f"over needs fn to return batch-leading outputs (one row per "
                             f"input row, {size} after padding), got leading shapes "
                             f"{sorted(leading)}")
    return jax.tree_util.tree_map(lambda a: a[:n], out)


def in_shares(run: Callable, arrays, workers: int, devices=()):
    """``run(*share)`` on ``workers`` threads at once, for equal shares of ``arrays`` split
    along axis 0 (padded with :func:`pad`, so that every share has one shape and reuses
    one compiled program); share ``i`` runs under ``jax.default_device(devices[i % k])``
    with its arrays on that device when ``devices`` (``k`` of them) is given. The outputs
    are concatenated along axis 0 and trimmed to the original length. One worker and at
    most one device: ``run(*arrays)``."""
    devices = check_devices(devices)
    n = arrays[0].shape[0]
    if workers == 1 and len(devices) <= 1:
        return run(*arrays)
    size = -(-n // workers)
    arrays = pad(list(arrays), size * workers)
    shares = [[a[i * size:(i + 1) * size] for a in arrays] for i in range(workers)]

    def go(i):
        if not devices:
            return run(*shares[i])
        dev = devices[i % len(devices)]
        with jax.default_device(dev):
            return run(*jax.device_put(shares[i], dev))

    with ThreadPoolExecutor(workers) as pool:
        outs = list(pool.map(go, range(workers)))
    home = devices[0] if devices else None  # shares on several devices meet on one
    return tuple(jnp.concatenate(parts if home is None else
                                 [jax.device_put(p, home) for p in parts])[:n]
                 for parts in zip(*outs))
