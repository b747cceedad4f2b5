"""The study runner: one output folder per run, results appended unit by unit, resume.

A :class:`Study` splits its work into *units* (small JSON-serialisable dicts, e.g. one qubit
count and depth). ``run`` writes to ``out_dir``:

* ``config.toml``   the full resolved configuration (re-usable with ``--config``);
* ``metadata.json`` qjaxrob/jax/jaxlib/Python versions, backend and devices, seed, status,
  start/end time of every session that worked on the folder;
* ``results.jsonl`` one line per finished unit (``{"unit": ..., "result": ..., "elapsed_s": ...,
  "fingerprint": ...}``), appended and flushed as each unit ends;
* ``summary.csv``   the study's summary table, rebuilt from all results at the end;
* ``*.png``         the study's plots (needs matplotlib: the ``plots`` extra).

**Resume.** Running again into the same folder with the same configuration skips the units
already in ``results.jsonl`` and appends the rest; a different configuration is refused
(naming the differing keys). Each unit's PRNG key is ``fold_in(key(seed), crc32(unit))``,
a function of the unit alone, so a resumed run produces exactly the lines of an
uninterrupted one. Files are written through :mod:`qjaxrob.storage`: a line with a single
``write`` + ``flush`` + ``fsync`` (an interruption can at worst leave a partial last line,
which the next run drops), ``metadata.json`` and ``summary.csv`` atomically.

**Devices and hosts.** ``devices=k`` lays the work over ``k`` local devices, as ``layout``
says. ``"units"`` (default): unit ``j`` of a process runs under ``jax.default_device`` of
device ``j mod k`` in one of ``k`` worker threads, and the results are appended in unit
order. ``"batch"``: the units run one after another, each with all ``k`` devices lent to it
(``qjaxrob.devices.use``): the batch axes a study vmaps inside a unit (restarts, inputs,
clients...) are laid over them (``qjaxrob.devices``); results equal the one-device run's to
float rounding. Either way a unit sees its devices through ``qjaxrob.devices.in_use()`` (one
device, or none without ``devices``: the plain one-device computation). After
:func:`init_distributed` (``jax.distributed.initialize``) the same program runs on every
process: process 0 locks the folder, decides the pending units and publishes them through
JAX's coordination service; pending unit ``j`` runs on process ``j mod P``; process 0
gathers every result and alone writes the folder, so the files equal a one-process run's
(up to ``elapsed_s``) and resume works as above. A process that stops with an error
tells the others, which exit with its reason; one that dies (killed) is reported by JAX's
coordination service, which stops the others (naming the dead task) after its heartbeat
timeout. Either way the units already written stay, and the same command resumes.

**Integrity.** Every line carries the :func:`fingerprint` of the study and its resolved
configuration (seed included). Resuming refuses, naming the file and line, a damaged line, a
line of another run (another fingerprint, e.g. pasted from a ``--seed 7`` folder), a
repeated unit or a unit this configuration does not have; lines without a fingerprint
(written by older versions) are readable by :func:`report` but not resumed. One process
writes a folder at a time: a second ``run`` gets ``LockError`` naming the owner's pid.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jaxlib
from tqdm import tqdm

import qjaxrob
from qjaxrob import devices as _devices
from qjaxrob.errors import MissingDependencyError, OutputError, ParameterError
from qjaxrob.experiments.configs import Field, dumps_toml, read_toml, validate
from qjaxrob.extras import require
from qjaxrob.storage import append_jsonl, drop_partial_line, locked, read_jsonl, write_atomic

__all__ = [
    "LAYOUTS",
    "SEED_FIELD",
    "RunResult",
    "Study",
    "fingerprint",
    "init_distributed",
    "load_config",
    "load_results",
    "process_settings",
    "report",
    "run",
    "unit_id",
]

SEED_FIELD = Field(0, "PRNG seed: unit u uses fold_in(key(seed), crc32(unit))", low=0,
                   high=2**31 - 1)


class Study(NamedTuple):
    """A runnable study.

    Attributes:
        name: the command-line name (``qjaxrob run NAME``).
        question: the question it answers, one line.
        fields: configuration keys (``configs.Field``); ``seed`` is added by the runner.
        units: ``config -> list of unit dicts`` (JSON-serialisable, distinct).
        run_unit: ``(config, context, unit, key) -> dict`` of JSON-serialisable results.
        summarize: ``(config, records) -> list of row dicts`` for ``summary.csv``; a record is
            ``{"unit": unit, "result": result}``.
        plot: ``(config, records, out_dir) -> list of PNG paths``.
        setup: optional ``(config, key) -> context`` shared by all units of one session
            (e.g. a trained model); deterministic, run only when some unit is pending.
    """

    name: str
    question: str
    fields: dict
    units: Callable[[dict], list]
    run_unit: Callable[..., dict]
    summarize: Callable[[dict, list], list]
    plot: Callable[[dict, list, Path], list]
    setup: Callable[[dict, Any], Any] | None = None

    @property
    def all_fields(self) -> dict:
        return {**self.fields, "seed": SEED_FIELD}


class RunResult(NamedTuple):
    """What ``run``/``report`` produced: the folder, the records (in unit order), the
    summary rows, the plot paths, and whether every unit is done."""

    out_dir: Path
    records: list
    summary: list
    plots: list
    complete: bool


def unit_id(unit: dict) -> str:
    """The canonical JSON text of a unit (its identity in ``results.jsonl``)."""
    return json.dumps(unit, sort_keys=True, separators=(",", ":"))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def fingerprint(study_name: str, config: dict) -> str:
    """The identity of a run's results: the first 16 hex digits of the SHA-256 of the
    canonical JSON of ``{"study": study_name, **config}`` (the resolved config, seed included)."""
    text = unit_id({"study": study_name, **config})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_config(out_dir) -> tuple[str, dict]:
    """``(study name, config)`` from ``out_dir/config.toml``."""
    path = Path(out_dir) / "config.toml"
    if not path.is_file():
        raise ParameterError(f"{str(out_dir)!r} holds no config.toml: not a study output folder")
    try:
        data = read_toml(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise OutputError(f"{str(path)!r} cannot be read ({reason}): restore it from the "
                          f"command that made the folder, or choose another --out") from None
    name = data.pop("study", None)
    if not isinstance(name, str):
        raise ParameterError(f"{str(path)!r} does not name its study (study = \"...\")")
    return name, data


def load_results(out_dir, *, fingerprint: str | None = None, units=None,
                 legacy: bool = False) -> list:
    """The records of ``out_dir/results.jsonl`` (``[]`` if none), in file order; a partial
    last line left by an interruption is ignored.

    Args:
        fingerprint: if given, every line must carry it (see :func:`fingerprint`).
        units: if given, the unit ids (:func:`unit_id`) a line may hold.
        legacy: with ``fingerprint``, also accept lines that carry none (older versions).

    Raises:
        OutputError: naming the file and line: a damaged line, a line without ``"unit"``
            or ``"result"``, a foreign fingerprint, a missing one (unless ``legacy``), a
            repeated unit, or a unit outside ``units``.
    """
    path = Path(out_dir) / "results.jsonl"
    where, records = {}, []
    for n, rec in read_jsonl(path):
        at = f"{str(path)!r} line {n}"
        if not isinstance(rec.get("unit"), dict) or "result" not in rec:
            raise OutputError(f"{at} is not a study result (it needs a \"unit\" object and a "
                              f"\"result\"): remove the line (its unit reruns) or choose "
                              f"another --out")
        got = rec.get("fingerprint")
        if fingerprint is not None and got != fingerprint and not (legacy and got is None):
            if got is None:
                raise OutputError(f"{at} carries no config fingerprint (written by an older "
                                  f"qjaxrob), so it cannot be checked and resumed: choose "
                                  f"another --out (qjaxrob report still reads this folder)")
            raise OutputError(f"{at} belongs to another run (config fingerprint {got!r}, this "
                              f"run's is {fingerprint!r}; copied from another folder?): "
                              f"remove the line (its unit reruns) or choose another --out")
        uid = unit_id(rec["unit"])
        if uid in where:
            raise OutputError(f"{at} repeats the unit {uid} of line {where[uid]}: remove "
                              f"one of the two lines")
        if units is not None and uid not in units:
            raise OutputError(f"{at} holds the unit {uid}, which this configuration does "
                              f"not have: remove the line or choose another --out")
        where[uid] = n
        records.append(rec)
    return records


def _read_metadata(path: Path, study: Study) -> dict:
    """``metadata.json`` (a fresh one if absent), or ``OutputError`` saying what to do."""
    if not path.exists():
        return {"study": study.name, "question": study.question, "sessions": []}
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("sessions"), list):
        raise OutputError(f"{str(path)!r} is damaged (not the JSON object qjaxrob writes); "
                          f"results.jsonl does not depend on it: delete metadata.json to "
                          f"resume (a new one is written, the record of earlier sessions is "
                          f"lost)")
    return meta


def _environment(seed: int) -> dict:
    return {
        "qjaxrob_version": qjaxrob.__version__,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "seed": seed,
    }


LAYOUTS = ("units", "batch")
"""How ``run(devices=k)`` uses the devices (module docstring)."""

ENV_COORDINATOR = "QJAXROB_COORDINATOR"
ENV_NUM_PROCESSES = "QJAXROB_NUM_PROCESSES"
ENV_PROCESS_ID = "QJAXROB_PROCESS_ID"
ENV_JAX_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # JAX's own name, read after ours
POLL_MS = 1000  # how often a waiting process checks whether another one stopped


def _env_or(value, env: str, what: str):
    """``value``, else the environment variable ``env`` (both given and different: a
    ``ParameterError`` naming both)."""
    text = os.environ.get(env)
    if text is None or text == "":
        return value
    if what != "coordinator":
        try:
            got = int(text)
        except ValueError:
            raise ParameterError(f"{env}={text!r} is not an integer") from None
    else:
        got = text
    if value is not None and value != got:
        raise ParameterError(f"inconsistent {what}: {value!r} given, but {env}={text!r}")
    return got


def process_settings(coordinator=None, num_processes=None, process_id=None) -> tuple:
    """The checked settings of a multi-host run, ``(coordinator, num_processes,
    process_id)``; touches no device. Each argument falls back to an environment variable:
    ``QJAXROB_COORDINATOR`` (then JAX's own ``JAX_COORDINATOR_ADDRESS``),
    ``QJAXROB_NUM_PROCESSES``, ``QJAXROB_PROCESS_ID``. Nothing given anywhere:
    ``(None, 1, 0)``, one process.

    Raises:
        ParameterError: an argument and its environment variable differ (or the two
            coordinator variables); a process count below 1 or a process id outside
            ``0..num_processes-1``; a count without an id or the reverse; several
            processes without a ``HOST:PORT`` coordinator address.
    """
    coordinator = _env_or(_env_or(coordinator, ENV_COORDINATOR, "coordinator"),
                          ENV_JAX_COORDINATOR, "coordinator")
    num_processes = _env_or(num_processes, ENV_NUM_PROCESSES, "process count")
    process_id = _env_or(process_id, ENV_PROCESS_ID, "process id")
    if coordinator is None and num_processes is None and process_id is None:
        return None, 1, 0
    if num_processes is None or process_id is None:
        raise ParameterError(f"a distributed run needs the process count and the process "
                             f"id, got num_processes={num_processes!r}, "
                             f"process_id={process_id!r}")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) \
            or num_processes < 1:
        raise ParameterError(f"num_processes must be an integer >= 1, got {num_processes!r}")
    if isinstance(process_id, bool) or not isinstance(process_id, int) \
            or not 0 <= process_id < num_processes:
        raise ParameterError(f"process_id must be in 0..{num_processes - 1} (num_processes "
                             f"= {num_processes}), got {process_id!r}")
    if num_processes > 1:
        host, _, port = (coordinator or "").rpartition(":")
        if not coordinator:
            raise ParameterError(f"{num_processes} processes need a coordinator address "
                                 f"(host:port of process 0)")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ParameterError(f"the coordinator address must be HOST:PORT (port "
                                 f"1..65535), got {coordinator!r}")
    return coordinator, num_processes, process_id


def init_distributed(coordinator=None, num_processes=None, process_id=None, *,
                     heartbeat_timeout: int = 100) -> tuple:
    """Joins the processes of a multi-host run (``jax.distributed.initialize``) before any
    JAX computation, with the settings of :func:`process_settings` (arguments, else the
    environment). One process: no initialisation. ``heartbeat_timeout`` (seconds): after
    it, JAX declares a silent process dead and stops the others. Returns
    ``(process_id, num_processes)``.

    Raises:
        ParameterError: the settings (:func:`process_settings`); JAX reporting another
            process count or id (processes started with different counts).
    """
    coordinator, num_processes, process_id = process_settings(coordinator, num_processes,
                                                              process_id)
    if num_processes == 1:
        return 0, 1
    jax.distributed.initialize(coordinator_address=coordinator,
                               num_processes=num_processes, process_id=process_id,
                               heartbeat_timeout_seconds=int(heartbeat_timeout))
    if jax.process_count() != num_processes or jax.process_index() != process_id:
        exc = ParameterError(f"JAX reports process {jax.process_index()} of "
                             f"{jax.process_count()} (the coordinator's count), but this "
                             f"process was started as {process_id} of {num_processes}")
        _abort(exc)
        raise exc
    return process_id, num_processes


def _kv():
    """JAX's coordination-service key-value store (the channel between processes)."""
    from jax._src import distributed

    return distributed.global_state.client


def _abort(exc) -> None:
    """Tells the other processes that this one stopped, and why."""
    with contextlib.suppress(jax.errors.JaxRuntimeError):  # already told
        _kv().key_value_set(f"qjaxrob/abort/{jax.process_index()}",
                            f"{type(exc).__name__}: {exc}")


def _await(kv, key: str) -> str:
    """The value of ``key``, waiting for it; ``ParameterError`` if another process
    reported that it stopped (:func:`_abort`) meanwhile."""
    while True:
        try:
            return kv.blocking_key_value_get(key, POLL_MS)
        except jax.errors.JaxRuntimeError as exc:
            if "DEADLINE_EXCEEDED" not in str(exc):
                raise
        for k, why in kv.key_value_dir_get("qjaxrob/abort/"):
            raise ParameterError(f"process {jax.process_index()}: process "
                                 f"{k.rsplit('/', 1)[-1]} stopped: {why}")


def _local_devices(devices) -> list:
    """The devices units are laid over: ``None`` (the default device), ``"all"`` or a
    count ``k`` (the first ``k`` local devices)."""
    local = jax.local_devices()
    if devices is None:
        return []
    if devices == "all":
        return local
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ParameterError(f"devices must be 'all' or an integer >= 1, got {devices!r}")
    if devices > len(local):
        raise ParameterError(f"devices = {devices} exceeds the {len(local)} local devices "
                             f"of this process ({local[0].platform})")
    return local[:devices]


def _check_same_config(out_dir: Path, study: Study, config: dict) -> None:
    name, saved = load_config(out_dir)
    if name != study.name:
        raise ParameterError(f"{str(out_dir)!r} holds results of study {name!r}, not "
                             f"{study.name!r}; choose another --out")
    saved = validate(study.all_fields, saved, study=name, where=f" in {str(out_dir)!r}")
    diff = sorted(k for k in set(saved) | set(config) if saved.get(k) != config.get(k))
    if diff:
        shown = "; ".join(f"{k}: saved {saved.get(k)!r}, now {config.get(k)!r}" for k in diff)
        raise ParameterError(f"{str(out_dir)!r} holds a run with a different configuration "
                             f"({shown}); choose another --out to start a new run")


def _write_csv(path: Path, rows: list) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(path, buf.getvalue())


def _finish(study: Study, config: dict, out_dir: Path, records: list, complete: bool,
            plots: bool, log) -> RunResult:
    summary = study.summarize(config, records) if records else []
    if summary:
        _write_csv(out_dir / "summary.csv", summary)
    paths = []
    if plots and records:
        try:
            require("matplotlib", "plots", "plotting")
        except MissingDependencyError as exc:
            log(f"plots skipped: {exc}")
        else:
            paths = [Path(p) for p in study.plot(config, records, out_dir)]
    return RunResult(out_dir, records, summary, paths, complete)


def run(study: Study, config: dict, out_dir, *, progress: bool = True, max_units=None,
        plots: bool = True, log: Callable[[str], Any] = lambda s: None,
        devices=None, layout: str = "units") -> RunResult:
    """Runs the pending units of ``study`` with the resolved ``config`` into ``out_dir``.

    ``max_units`` stops after that many new units (for tests and time-boxed sessions; the
    folder is left resumable). ``log`` receives one-line progress messages. ``devices``:
    ``None`` (the default device), ``"all"`` or ``k`` local devices, used as ``layout``
    says: ``"units"`` lays the units over them, ``"batch"`` lends them all to each unit's
    vmapped batch axes (module docstring). In a multi-process run (:func:`init_distributed`) every process calls
    ``run`` with the same arguments; process 0 writes the folder and returns the full
    result; the others return their own records, no summary, ``complete=False``.

    Raises:
        ParameterError: an invalid config, or a folder holding another study or config;
            ``devices`` not ``"all"`` or a count of local devices; an unknown ``layout``.
        OutputError: ``out_dir`` is a file or not writable; a damaged, foreign or repeated
            ``results.jsonl`` line (named by file and line); a damaged ``metadata.json``.
        LockError: another process is running into ``out_dir``.
    """
    config = validate(study.all_fields, config, study=study.name)
    missing = sorted(set(study.all_fields) - set(config))
    if missing:
        raise ParameterError(f"config for {study.name!r} lacks keys {missing}")
    devs = _slots(_local_devices(devices), layout)
    if jax.process_index() != 0:
        return _run_follower(study, config, Path(out_dir), devs, log)
    try:
        with locked(out_dir, f"study folder {str(out_dir)!r}") as out_dir:
            return _run_locked(study, config, out_dir, progress, max_units, plots, log,
                               devs)
    except Exception as exc:
        if jax.process_count() > 1:
            _abort(exc)
        raise


def _unit_key(base, unit):
    return jax.random.fold_in(base, zlib.crc32(unit_id(unit).encode()) & 0x7FFFFFFF)


def _slots(devs: list, layout: str) -> list:
    """The device groups units run on, one unit at a time per group: ``"units"``, one
    group per device; ``"batch"``, one group of every device."""
    if layout not in LAYOUTS:
        raise ParameterError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "batch":
        return [tuple(devs)] if devs else []
    return [(d,) for d in devs]


def _compute(study, config, context, unit, base, stamp, slot) -> dict:
    """One unit's record, with the devices ``slot`` lent to it (``qjaxrob.devices.use``;
    one device is also the default device); ``None``: the default device."""
    t0 = time.perf_counter()
    with contextlib.ExitStack() as scope:
        if slot is not None:
            scope.enter_context(_devices.use(slot))
            if len(slot) == 1:
                scope.enter_context(jax.default_device(slot[0]))
        result = study.run_unit(config, context, unit, _unit_key(base, unit))
    return {"unit": unit, "result": result, "elapsed_s": round(time.perf_counter() - t0, 4),
            "fingerprint": stamp}


def _records(study, config, context, units, base, stamp, devs):
    """Yields the records of ``units`` in order, laid over the device groups ``devs``
    (:func:`_slots`; several: one thread each)."""
    if len(devs) <= 1:
        for unit in units:
            yield _compute(study, config, context, unit, base, stamp,
                           devs[0] if devs else None)
        return
    pool = ThreadPoolExecutor(len(devs), thread_name_prefix="qjaxrob-unit")
    try:
        futures = [pool.submit(_compute, study, config, context, u, base, stamp,
                               devs[j % len(devs)]) for j, u in enumerate(units)]
        for f in futures:
            yield f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_follower(study, config, out_dir: Path, devs, log) -> RunResult:
    """A process other than 0: computes its share of the pending units (published by
    process 0) and hands each record to process 0 through the coordination service; on
    failure it tells the others why (:func:`_abort`)."""
    kv, me, n_proc = _kv(), jax.process_index(), jax.process_count()
    records = []
    try:
        plan = json.loads(_await(kv, "qjaxrob/plan"))
        mine = [j for j in range(len(plan["pending"])) if j % n_proc == me]
        stamp = fingerprint(study.name, config)
        if plan["fingerprint"] != stamp or plan["processes"] != n_proc:
            raise ParameterError(
                f"process {me} runs study {study.name!r} with config fingerprint {stamp!r} "
                f"on {n_proc} processes, but process 0 runs fingerprint "
                f"{plan['fingerprint']!r} on {plan['processes']}: start every process "
                f"with the same command")
        units = study.units(config)
        log(f"process {me}: {len(mine)} of {len(plan['pending'])} pending units")
        if mine:
            base = jax.random.key(config["seed"])
            context = (study.setup(config, jax.random.fold_in(base, 0)) if study.setup
                       else None)
            todo = [units[plan["pending"][j]] for j in mine]
            for j, rec in zip(mine, _records(study, config, context, todo, base, stamp,
                                             devs)):
                kv.key_value_set(f"qjaxrob/unit/{j}", json.dumps(rec))
                records.append(rec)
    except Exception as exc:
        _abort(exc)
        raise
    return RunResult(out_dir, records, [], [], False)


def _gathered(study, config, context, pending, base, stamp, devs):
    """Process 0's view: the records of ``pending`` in order, its own share computed
    here, the others' read from the coordination service."""
    n_proc = jax.process_count()
    if n_proc == 1:
        yield from _records(study, config, context, pending, base, stamp, devs)
        return
    kv = _kv()
    own = _records(study, config, context, pending[::n_proc], base, stamp, devs)
    for j in range(len(pending)):
        if j % n_proc == 0:
            yield next(own)
            continue
        yield json.loads(_await(kv, f"qjaxrob/unit/{j}"))


def _run_locked(study: Study, config: dict, out_dir: Path, progress, max_units, plots,
                log, devs) -> RunResult:
    if (out_dir / "config.toml").exists():
        _check_same_config(out_dir, study, config)
    else:
        write_atomic(out_dir / "config.toml", dumps_toml(
            {"study": study.name, **config},
            header=f"qjaxrob run {study.name} --config <this file>: {study.question}"))
    meta_path = out_dir / "metadata.json"
    meta = _read_metadata(meta_path, study)
    meta.update(_environment(config["seed"]))
    session = {"started": _now(), "ended": None, "units_run": 0, "status": "running"}
    meta["sessions"].append(session)

    units = study.units(config)
    ids = [unit_id(u) for u in units]
    if len(set(ids)) != len(ids):
        raise ParameterError(f"study {study.name!r} produced repeated units; check the "
                             f"config lists for duplicates")
    results_path = out_dir / "results.jsonl"
    stamp = fingerprint(study.name, config)
    drop_partial_line(results_path)
    done = {unit_id(r["unit"]): r
            for r in load_results(out_dir, fingerprint=stamp, units=set(ids))}
    pending = [(i, u) for i, (u, uid) in enumerate(zip(units, ids)) if uid not in done]
    if max_units is not None:
        pending = pending[:max_units]
    meta.update(units_total=len(units), units_done=len(done),
                processes=jax.process_count(), unit_devices=max(len(devs), 1),
                batch_devices=len(devs[0]) if len(devs) == 1 else 1)
    write_atomic(meta_path, json.dumps(meta, indent=2))
    log(f"{len(units)} units, {len(done)} already done, {len(pending)} to run now")
    if jax.process_count() > 1:
        _kv().key_value_set("qjaxrob/plan", json.dumps(
            {"pending": [i for i, _ in pending], "fingerprint": stamp,
             "processes": jax.process_count()}))

    base = jax.random.key(config["seed"])
    bar = tqdm(total=len(units), initial=len(done), desc=study.name, unit="unit",
               disable=not progress, dynamic_ncols=True)
    try:
        if pending:
            context = study.setup(config, jax.random.fold_in(base, 0)) if study.setup else None
            for record in _gathered(study, config, context, [u for _, u in pending], base,
                                    stamp, devs):
                append_jsonl(results_path, record)
                done[unit_id(record["unit"])] = record
                session["units_run"] += 1
                bar.update(1)
        status = "complete" if len(done) == len(units) else "partial"
    except BaseException as exc:
        session["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        session["ended"] = _now()
        meta.update(units_done=len(done), status=session["status"])
        write_atomic(meta_path, json.dumps(meta, indent=2))
        raise
    finally:
        bar.close()
    session["status"], session["ended"] = status, _now()
    meta.update(units_done=len(done), status=status)
    write_atomic(meta_path, json.dumps(meta, indent=2))
    records = [done[uid] for uid in ids if uid in done]
    return _finish(study, config, out_dir, records, status == "complete", plots, log)


def report(study: Study, out_dir, *, plots: bool = True) -> RunResult:
    """Rebuilds ``summary.csv`` and the plots of ``out_dir`` from its saved results (lines
    without a fingerprint, from older versions, are read; foreign or damaged ones refused)."""
    out_dir = Path(out_dir)
    name, config = load_config(out_dir)
    if name != study.name:
        raise ParameterError(f"{str(out_dir)!r} holds study {name!r}, not {study.name!r}")
    config = validate(study.all_fields, config, study=name, where=f" in {str(out_dir)!r}")
    ids = [unit_id(u) for u in study.units(config)]
    done = {unit_id(r["unit"]): r for r in load_results(
        out_dir, fingerprint=fingerprint(name, config), units=set(ids), legacy=True)}
    records = [done[uid] for uid in ids if uid in done]
    return _finish(study, config, out_dir, records, len(records) == len(ids), plots,
                   lambda s: None)
