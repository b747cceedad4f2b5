"""qjaxrob: robustness studies of distributed quantum machine learning.

commands:
  qjaxrob list [STUDY]          the studies, one line each (with STUDY: its config keys)
  qjaxrob run STUDY [options]   run or resume a study; results, summary.csv and PNG plots
                                land in the output folder (default results/STUDY[-quick])
  qjaxrob report DIR            rebuild summary.csv and the plots of DIR from its results
  qjaxrob simulate [options]    time a hardware-efficient ansatz (value, gradient)

A study's units can be laid over local devices (run --devices N|all), or each unit's
vmapped batch axes over them (--layout batch), and over hosts:
start the same run command on every process with --coordinator HOST:PORT
--num-processes P --process-id I (or QJAXROB_COORDINATOR, else JAX's
JAX_COORDINATOR_ADDRESS, QJAXROB_NUM_PROCESSES, QJAXROB_PROCESS_ID); process 0 writes
the folder. Inconsistent process settings are usage errors (status 2).

Errors from bad input print one line and exit with status 1; Ctrl-C during a run exits
with status 130 and leaves the folder consistent (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import qjaxrob as qjr
from qjaxrob import cache, experiments
from qjaxrob.errors import ParameterError, QjrError


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Plain-text descriptions kept as written, and every option's default shown."""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _table(rows: list, max_cols: int = 10) -> str:
    """Rows of dicts as an aligned plain-text table (first ``max_cols`` columns)."""
    if not rows:
        return "(no rows)"
    keys = list(dict.fromkeys(k for r in rows for k in r))[:max_cols]
    cells = [keys] + [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(keys))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


# ---- list / run / report ---------------------------------------------------------------
def _list(args) -> int:
    if args.study is None:
        known = experiments.studies()
        width = max(map(len, known))
        for name, study in known.items():
            print(f"{name.ljust(width)}  {study.question}")
        return 0
    study = experiments.get_study(args.study)
    print(f"{study.name}: {study.question}\nconfig keys (default; --quick value):")
    for key, f in study.all_fields.items():
        quick = f.value(True)
        extra = "" if quick == f.default else f"; quick {quick}"
        print(f"  {key} = {f.default}{extra}\n      {f.help}")
    return 0


def _print_result(res) -> None:
    print(_table(res.summary))
    print(f"results: {res.out_dir / 'results.jsonl'} ({len(res.records)} units)")
    if res.summary:
        print(f"summary: {res.out_dir / 'summary.csv'}")
    for p in res.plots:
        print(f"plot:    {p}")


def _resolve(study, args) -> dict:
    """The study's config from the command line; a ``--config`` that cannot be read as text
    (a folder, a binary file, no permission) is a ``ParameterError`` naming it."""
    try:
        return experiments.resolve(study, quick=args.quick, file=args.config,
                                   overrides=args.set or (), seed=args.seed)
    except (OSError, UnicodeDecodeError) as exc:
        reason = ("it is not UTF-8 text (a binary file?)" if isinstance(exc, UnicodeDecodeError)
                  else "it is a folder" if isinstance(exc, IsADirectoryError) else exc.strerror)
        raise ParameterError(f"--config {args.config!r} cannot be read: {reason}") from None


def _run(args) -> int:
    study = experiments.get_study(args.study)
    config = _resolve(study, args)
    if config.get("dtype") == "complex128":
        jax.config.update("jax_enable_x64", True)
    pid, n_proc = experiments.runner.init_distributed(
        args.coordinator, args.num_processes, args.process_id,
        heartbeat_timeout=args.heartbeat_timeout)
    out = args.out or f"results/{study.name}{'-quick' if args.quick else ''}"
    hosts = f", process {pid} of {n_proc}" if n_proc > 1 else ""
    print(f"qjaxrob run {study.name} -> {out}  (jax {jax.__version__}, backend "
          f"{jax.default_backend()}{hosts})")
    for key, value in config.items():
        print(f"  {key} = {value}")
    print("compiling and running (the first unit includes compilation)...", flush=True)
    try:
        res = experiments.run(study, config, out, progress=not args.no_progress and pid == 0,
                              max_units=args.max_units, log=print, devices=args.devices,
                              layout=args.layout)
        if pid != 0:
            print(f"process {pid}: {len(res.records)} units computed; process 0 writes {out}")
            return 0
    except KeyboardInterrupt:
        done = len(experiments.load_results(out))
        print(f"\ninterrupted: {done} finished units are saved in {out}; run the same "
              f"command again to resume", file=sys.stderr)
        return 130
    _print_result(res)
    if not res.complete:
        print(f"partial: {len(res.records)} units done; run the same command to continue")
    return 0


def _report(args) -> int:
    name, _ = experiments.runner.load_config(args.dir)
    res = experiments.report(experiments.get_study(name), args.dir)
    print(f"{name}: {experiments.get_study(name).question}")
    _print_result(res)
    return 0


# ---- simulate ---------------------------------------------------------------------------
def _simulate(args) -> int:
    if args.dtype == "complex128":
        jax.config.update("jax_enable_x64", True)
    n, dtype = args.qubits, np.dtype(args.dtype)
    if args.layers < 1:
        raise ParameterError(f"--layers must be >= 1, got {args.layers}")
    circuit = qjr.qml.hardware_efficient(n, args.layers)
    qjr.checks.check_memory(n, dtype, batch=max(args.batch, 1), what="qjaxrob simulate")
    if args.batch:
        enc = qjr.Circuit(n)
        for q in range(n):
            enc = enc.ry(q, qjr.inp(q))
        circuit = enc + circuit
    obs = qjr.Z(0)

    def value(p, x):
        return qjr.expval(circuit, obs, p, x, dtype=dtype, diff=args.diff)

    if args.batch:
        def loss(p, xs):
            return jnp.mean(jax.vmap(value, in_axes=(None, 0))(p, xs))
    else:
        loss = value
    fn = jax.jit(jax.value_and_grad(loss) if args.grad else loss)

    key_p, key_x = jax.random.split(jax.random.key(args.seed))
    real = np.finfo(dtype).dtype
    params = jax.random.uniform(key_p, (circuit.n_params,), real, -np.pi, np.pi)
    xs = (jax.random.uniform(key_x, (args.batch, n), real, -np.pi, np.pi) if args.batch
          else jnp.zeros((0,), real))

    print(f"qjaxrob simulate: {n} qubits, {args.layers} layers, {circuit.n_params} params, "
          f"{args.dtype}, backend {jax.default_backend()}"
          + (f", batch {args.batch}" if args.batch else "") + (", gradient" if args.grad else ""))
    print("compiling...", flush=True)
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(params, xs))
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(params, xs))
        times.append(time.perf_counter() - t0)
    val, grad = out if args.grad else (out, None)

    what = f"mean <Z0> over {args.batch} inputs" if args.batch else "<Z0>"
    print(f"  {what} = {float(val):.10f}")
    if grad is not None:
        print(f"  gradient ({args.diff}): {grad.shape[0]} entries, "
              f"norm {float(jnp.linalg.norm(grad)):.6g}")
    print(f"  first call (trace + compile + run): {first * 1e3:.1f} ms")
    if times:
        print(f"  run (median of {args.repeats}): {statistics.median(times) * 1e3:.2f} ms")
    return 0


# ---- parser -------------------------------------------------------------------------------
def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _devices(text: str):
    return "all" if text == "all" else _positive_int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qjaxrob", description=__doc__,
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version",
                        version=f"qjaxrob {qjr.__version__} (jax {jax.__version__})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the studies (or one study's config keys)",
                       formatter_class=_Formatter)
    p.add_argument("study", nargs="?", default=None, help="show this study's config keys")
    p.set_defaults(handler=_list)

    p = sub.add_parser(
        "run", help="run or resume a study", formatter_class=_Formatter,
        description="Runs a study into an output folder: config.toml (resolved config), "
                    "metadata.json, results.jsonl (one line per finished unit), summary.csv "
                    "and PNG plots. Re-running into the same folder resumes it.",
        epilog="studies: " + ", ".join(experiments.studies())
               + "\nconfig keys of a study: qjaxrob list STUDY")
    p.add_argument("study", help="study name (qjaxrob list)")
    p.add_argument("--config", metavar="FILE.toml", default=None,
                   help="TOML file of config keys (flat key = value lines)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=None,
                   help="override one config key (a TOML value: qubits=[2,4], cost=local); "
                        "repeatable")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: results/STUDY, or results/STUDY-quick "
                        "with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="the small configuration (under a minute on 2 CPU cores)")
    p.add_argument("--seed", type=_nonneg_int, default=None,
                   help="PRNG seed (default: the config's seed, 0)")
    p.add_argument("--max-units", type=_positive_int, default=None,
                   help="stop after this many new units (re-run to continue; default: all)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--devices", type=_devices, default=None,
                   help="lay the units over N local devices (or 'all'); default: the "
                        "default device")
    p.add_argument("--layout", choices=experiments.runner.LAYOUTS, default="units",
                   help="with --devices: 'units' runs one unit per device at a time; 'batch' "
                        "runs one unit at a time with its vmapped axes (restarts, inputs, "
                        "clients...) laid over all the devices")
    p.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                   help="multi-host run: process 0's address for jax.distributed.initialize "
                        "(env QJAXROB_COORDINATOR, else JAX_COORDINATOR_ADDRESS); start the same "
                        "command on every process")
    p.add_argument("--num-processes", type=_positive_int, default=None,
                   help="multi-host run: the number of processes (env QJAXROB_NUM_PROCESSES)")
    p.add_argument("--process-id", type=_nonneg_int, default=None,
                   help="multi-host run: this process's id, 0 writes the results "
                        "(env QJAXROB_PROCESS_ID)")
    p.add_argument("--heartbeat-timeout", type=_positive_int, default=100,
                   help="multi-host run: seconds after which a silent process counts as dead "
                        "and the others stop (rerun the same command to resume)")
    p.set_defaults(handler=_run, usage_error=p.error)

    p = sub.add_parser("report", help="rebuild summary.csv and plots from saved results",
                       formatter_class=_Formatter)
    p.add_argument("dir", help="a study output folder")
    p.set_defaults(handler=_report)

    p = sub.add_parser("simulate", help="time a hardware-efficient ansatz",
                       formatter_class=_Formatter,
                       description="Runs a hardware-efficient ansatz (L layers of RY+RZ on "
                                   "every qubit, then a CNOT ring; <Z0>), optionally on a "
                                   "batch of angle-encoded inputs and with the gradient, and "
                                   "reports the value and how long the first call (trace + "
                                   "compile + run) and later calls (median) took. The memory "
                                   "the state needs is checked before anything is allocated.")
    p.add_argument("--qubits", type=int, default=8, help="number of qubits")
    p.add_argument("--layers", type=int, default=4, help="ansatz layers")
    p.add_argument("--batch", type=_nonneg_int, default=0,
                   help="batch of random inputs, angle-encoded with RY (0: no inputs)")
    p.add_argument("--grad", action="store_true", help="also compute the gradient")
    p.add_argument("--diff", choices=["backprop", "adjoint"], default="backprop",
                   help="gradient method: backprop (any order) or adjoint (memory flat in depth)")
    p.add_argument("--dtype", choices=["complex64", "complex128"], default="complex64",
                   help="simulation precision")
    p.add_argument("--repeats", type=_nonneg_int, default=5,
                   help="timed calls after the first")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the random parameters")
    p.set_defaults(handler=_simulate)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.handler is _run:  # before anything touches a device: usage errors (status 2)
        try:
            experiments.runner.process_settings(args.coordinator, args.num_processes,
                                                args.process_id)
        except ParameterError as exc:
            args.usage_error(str(exc))
    cache.enable()  # persistent compilation cache (qjaxrob.cache; QJAXROB_CACHE_DIR=off)
    try:
        return args.handler(args)
    except QjrError as exc:
        print(f"qjaxrob: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
