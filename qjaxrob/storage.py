"""Files that survive interruptions: atomic writes, JSONL logs, pytree checkpoints, folder locks.

Every long-running writer in qjaxrob (``qml.fit``, ``federated.run``, the Flower server,
the study runner) keeps its output with these functions, so an interrupted, damaged or
contested output folder behaves the same everywhere:

* :func:`write_atomic` writes a whole file through a temporary file in the same folder
  (``write`` + ``fsync``, then ``os.replace``): readers see the old or the new file, never
  a mix.
* :func:`append_jsonl` appends one JSON object per line with a single ``write`` +
  ``flush`` + ``fsync``. An interruption can at worst leave a *partial last line* (no
  newline); :func:`read_jsonl` ignores it and :func:`drop_partial_line` removes it before
  the next append. Any other line that is not a JSON object is *damage*, and
  :func:`read_jsonl` refuses the file with an :class:`~qjaxrob.errors.OutputError` naming
  the file and line (nothing is dropped silently).
* :func:`write_checkpoint` / :func:`read_checkpoint` store named pytrees as a plain
  ``.npz`` (``"{name}/{i}"`` holds leaf ``i`` of ``jax.tree_util.tree_leaves(tree)``; typed
  PRNG keys are stored as their raw ``key_data``) plus named extra arrays and a SHA-256
  digest of all entries (``__sha256__``; files without one, from older versions, are read
  unchecked). Loading never unpickles (``allow_pickle=False``); a truncated or corrupt file
  raises :class:`~qjaxrob.errors.CheckpointError` naming it.
* :func:`locked` holds an exclusive lock on an output folder for one writer: a lock file
  ``.qjaxrob.lock`` holding the owner's pid, host and start time, locked with ``flock``
  (POSIX). A second writer gets a :class:`~qjaxrob.errors.LockError` naming the owner; the
  kernel releases the lock of a process that died, so a lock file left by a dead process
  (a *stale* lock) is taken over.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import io
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qjaxrob.errors import CheckpointError, LockError, OutputError, ParameterError

__all__ = [
    "LOCK_FILE",
    "Line",
    "append_jsonl",
    "drop_partial_line",
    "dumps_line",
    "locked",
    "make_folder",
    "read_checkpoint",
    "read_jsonl",
    "write_atomic",
    "write_checkpoint",
    "write_jsonl",
]

LOCK_FILE = ".qjaxrob.lock"
_DIGEST = "__sha256__"  # checkpoint entry: digest of all other entries


# ---- folders and atomic writes -------------------------------------------------------------
def make_folder(path) -> Path:
    """``path`` as an existing, writable folder (created with its parents if needed), or
    ``OutputError`` naming it (a file stands there, or it cannot be created or written)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"output folder {str(path)!r} is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"output folder {str(path)!r} cannot be created: "
                          f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {str(path)!r} is not writable")
    return path


def _fsync_folder(folder: Path) -> None:
    """Makes a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that cannot sync a directory
        pass
    finally:
        os.close(fd)


def write_atomic(path, data: str | bytes) -> None:
    """Replaces ``path`` by ``data`` (``str`` is written as UTF-8) atomically: a temporary
    file in the same folder is written and fsynced, then renamed over ``path``."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


# ---- JSONL -----------------------------------------------------------------------------------
class Line(NamedTuple):
    """One record of a JSONL file and its 1-based line number."""

    number: int
    record: dict


def dumps_line(record: dict, *, sort_keys: bool = False) -> str:
    """``record`` as one JSONL line (with its newline; NaN and inf written as ``NaN``,
    ``Infinity``, which :func:`read_jsonl` reads back)."""
    if not isinstance(record, dict):
        raise ParameterError(f"a JSONL record must be a dict, got {type(record).__name__}")
    return json.dumps(record, sort_keys=sort_keys) + "\n"


def append_jsonl(path, record: dict, *, sort_keys: bool = False) -> None:
    """Appends ``record`` to ``path`` as one line: a single ``write`` + ``flush`` + ``fsync``.

    A file that ends in a partial line raises ``OutputError`` (the record would be glued to
    it): call :func:`drop_partial_line` when a writer starts."""
    line = dumps_line(record, sort_keys=sort_keys).encode("utf-8")
    with open(path, "a+b") as fh:
        if fh.seek(0, os.SEEK_END) > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                raise OutputError(f"{str(path)!r} ends in a partial line: drop it "
                                  f"(storage.drop_partial_line) before appending")
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def write_jsonl(path, records, *, sort_keys: bool = False) -> None:
    """Replaces ``path`` atomically by ``records``, one line each."""
    write_atomic(path, "".join(dumps_line(r, sort_keys=sort_keys) for r in records))


def read_jsonl(path) -> list[Line]:
    """The records of the JSONL file ``path`` (``[]`` if it does not exist).

    A last line without a newline (an interrupted append) is ignored. Any other line that is
    not one JSON object raises ``OutputError`` naming the file and the line number.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise OutputError(f"{str(path)!r} cannot be read: {exc.strerror or exc}") from None
    lines = data.split(b"\n")[:-1]  # the piece after the last newline is partial (or empty)
    out = []
    for n, raw in enumerate(lines, 1):
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if not isinstance(record, dict):
            shown = raw[:80].decode("utf-8", "replace")
            raise OutputError(
                f"{str(path)!r} line {n} is damaged (not a JSON object: {shown!r}); it is "
                f"followed by a newline, so it is not an interrupted write. Restore the file "
                f"from a copy, or start over in a new output folder")
        out.append(Line(n, record))
    return out


def drop_partial_line(path) -> bool:
    """Removes a partial last line (no newline, left by an interruption) from ``path``;
    returns whether there was one."""
    path = Path(path)
    if not path.exists():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with open(path, "r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)
        fh.flush()
        os.fsync(fh.fileno())
    return True


# ---- pytree checkpoints ---------------------------------------------------------------------
def _is_key(a) -> bool:
    return isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jax.dtypes.prng_key)


def _leaf_array(a, where: str) -> np.ndarray:
    out = np.asarray(jax.random.key_data(a) if _is_key(a) else a)
    if out.dtype == object:
        raise ParameterError(f"checkpoint {where}: a leaf of type {type(a).__name__} is not "
                             f"an array (filter the tree to its arrays first)")
    return out


def write_checkpoint(path, trees: dict, arrays: dict | None = None) -> None:
    """Atomically writes the pytrees ``trees`` (name -> pytree) and the extra ``arrays``
    (name -> array-like, names without ``/`` prefixes of a tree) to the ``.npz`` file ``path``.

    Leaves must be arrays, scalars or typed PRNG keys (filter models with
    ``eqx.filter(model, eqx.is_array)`` first); ``None`` leaves are skipped.
    """
    out = {}
    for name, tree in trees.items():
        for i, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
            out[f"{name}/{i}"] = _leaf_array(leaf, f"{path} ({name})")
    for name, value in (arrays or {}).items():
        if name in out or name == _DIGEST or any(name.startswith(f"{t}/") for t in trees):
            raise ParameterError(f"checkpoint array name {name!r} collides with a tree leaf")
        out[name] = _leaf_array(value, f"{path} ({name})")
    buf = io.BytesIO()
    # the digest goes first: a damaged entry count in the archive's directory drops the last
    # entries, never the digest
    np.savez(buf, **{_DIGEST: np.asarray(_digest(out))}, **out)
    write_atomic(path, buf.getvalue())


def _digest(data: dict) -> str:
    """SHA-256 over every entry's name, dtype, shape and bytes (in name order)."""
    h = hashlib.sha256()
    for name in sorted(data):
        a = np.ascontiguousarray(data[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _load_npz(path: Path) -> dict:
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise CheckpointError(f"checkpoint {str(path)!r} is a bare .npy array, not an "
                                  f".npz archive")
        with f:
            data = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file") from None
    except PermissionError:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read (permission "
                              f"denied)") from None
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to parse the bytes is corruption
        # NumPy's own messages may suggest unpickling (allow_pickle=True): never shown
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt ({type(exc).__name__} while "
            f"reading it as a plain .npz archive); delete it to start over") from None
    digest = data.pop(_DIGEST, None)
    if digest is not None and str(digest) != _digest(data):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt (its contents do not "
                              f"match their SHA-256 digest); delete it to start over")
    return data


def _rebuild(template, leaves: list, name: str, path: Path):
    flat, treedef = jax.tree_util.tree_flatten(template)
    if len(flat) != len(leaves):
        raise ParameterError(
            f"checkpoint {str(path)!r}: {name} has {len(leaves)} leaves, expected {len(flat)} "
            f"(written by a different model, optimizer or configuration)")
    new = []
    for i, (t, v) in enumerate(zip(flat, leaves)):
        if _is_key(t):
            new.append(jax.random.wrap_key_data(jnp.asarray(v), impl=jax.random.key_impl(t)))
            continue
        if np.shape(t) != v.shape:
            raise ParameterError(
                f"checkpoint {str(path)!r}: {name} leaf {i} has shape {v.shape}, expected "
                f"{np.shape(t)} (written by a different model, optimizer or configuration)")
        if isinstance(t, (jax.Array, np.ndarray)) and not getattr(t, "weak_type", False) \
                and t.dtype != v.dtype:
            raise ParameterError(
                f"checkpoint {str(path)!r}: {name} leaf {i} has dtype {v.dtype}, expected "
                f"{t.dtype} (written at another precision? compare jax_enable_x64)")
        new.append(jnp.asarray(v))
    return jax.tree_util.tree_unflatten(treedef, new)


def read_checkpoint(path, templates: dict, required=(), check=None) -> tuple[dict, dict]:
    """Reads a file written by :func:`write_checkpoint`.

    Args:
        path: the ``.npz`` file.
        templates: name -> pytree with the structure, shapes and dtypes of the saved tree
            (e.g. a freshly initialised model, filtered like the saved one).
        required: names of extra arrays that must be present.
        check: optional ``check(data)``, called with all entries (name -> NumPy array)
            before any tree is rebuilt, e.g. to refuse a checkpoint of another
            configuration with its own message.

    Returns:
        ``(trees, arrays)``: name -> rebuilt pytree (leaves as ``jax.Array``, keys re-wrapped
        with the template's implementation), and the remaining entries as NumPy arrays.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, or lacks a required entry.
        ParameterError: a tree does not match its template (other model or configuration).
    """
    path = Path(path)
    data = _load_npz(path)
    missing = [k for k in required if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks the entries {missing}: it was "
                              f"written by something else")
    if check is not None:
        check(data)
    trees = {}
    for name, template in templates.items():
        keys = [k for k in data if k.startswith(f"{name}/")]
        try:
            keys.sort(key=lambda k: int(k.split("/", 1)[1]))
        except ValueError:
            raise CheckpointError(f"checkpoint {str(path)!r} holds an entry {keys[0]!r} that "
                                  f"is not a leaf index") from None
        trees[name] = _rebuild(template, [data.pop(k) for k in keys], name, path)
    return trees, data


# ---- folder locks ----------------------------------------------------------------------------
def _owner(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {info['pid']} on host {info['host']}, since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown: the lock file is being written"


def _acquire(path: Path, what: str) -> int:
    import fcntl  # POSIX only: imported here so that the rest of the module works anywhere

    for _ in range(100):  # the owner may replace the lock file while it releases it
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = _owner(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise OutputError(f"{what}: cannot lock {str(path)!r}: "
                                  f"{exc.strerror or exc}") from None
            raise LockError(f"{what} is in use by another writer ({owner}; lock file "
                            f"{str(path)!r}): wait for it to finish, or choose another "
                            f"output folder") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
            os.fsync(fd)
            return fd
        os.close(fd)  # locked a file the previous owner had just removed: try again
    raise LockError(f"{what}: the lock file {str(path)!r} keeps changing")  # pragma: no cover


@contextlib.contextmanager
def locked(folder, what: str | None = None, *, name: str = LOCK_FILE) -> Iterator[Path]:
    """Holds the exclusive writer's lock of ``folder`` (created if needed) for the
    ``with`` block; yields the folder.

    The lock file ``folder/name`` (default ``.qjaxrob.lock``; another name locks one file
    of the folder, e.g. ``"run.npz.lock"``) records the owner's pid, host and start time
    and is removed on exit. A lock held by a live process raises ``LockError`` naming that
    owner (``what`` names the folder in the message); the kernel drops the lock of a
    process that died, so a lock file it left behind (stale) is simply taken over.
    """
    folder = make_folder(folder)
    path = folder / name
    fd = _acquire(path, what or f"output folder {str(folder)!r}")
    try:
        yield folder
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
