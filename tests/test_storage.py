"""qjaxrob.storage: atomic writes, strict JSONL, pytree checkpoints that never unpickle and
refuse corruption, and the output-folder lock."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qjaxrob import storage
from qjaxrob.errors import CheckpointError, LockError, OutputError, ParameterError


# ---- atomic writes and folders ----------------------------------------------------------------
def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    storage.write_atomic(p, "one")
    storage.write_atomic(p, b"two\xff")
    assert p.read_bytes() == b"two\xff" and os.listdir(tmp_path) == ["f.txt"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # like open(..., "w")

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        storage.write_atomic(p, "three")
    assert p.read_bytes() == b"two\xff" and os.listdir(tmp_path) == ["f.txt"]


def test_make_folder_refuses_files_and_unwritable_places(tmp_path):
    assert storage.make_folder(tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"'.*file' is a file, not a folder"):
        storage.make_folder(tmp_path / "file")
    with pytest.raises(OutputError, match=r"'.*file/sub' cannot be created: Not a directory"):
        storage.make_folder(tmp_path / "file" / "sub")


# ---- JSONL --------------------------------------------------------------------------------------
def test_jsonl_round_trip_and_interrupted_last_line(tmp_path):
    p = tmp_path / "log.jsonl"
    recs = [{"a": 1, "b": [0.5, None]}, {"x": float("nan"), "y": "é\n"}, {}]
    for r in recs:
        storage.append_jsonl(p, r)
    back = storage.read_jsonl(p)
    assert [ln.number for ln in back] == [1, 2, 3]
    assert back[0].record == recs[0] and np.isnan(back[1].record["x"])
    assert back[1].record["y"] == "é\n" and back[2].record == {}
    with open(p, "a") as fh:  # an append cut short
        fh.write('{"a": 2, "b')
    assert len(storage.read_jsonl(p)) == 3
    with pytest.raises(OutputError, match="ends in a partial line"):  # never glued to it
        storage.append_jsonl(p, {"a": 2})
    assert storage.drop_partial_line(p) and not storage.drop_partial_line(p)
    storage.append_jsonl(p, {"a": 2})
    assert [ln.record for ln in storage.read_jsonl(p)][-1] == {"a": 2}
    storage.write_jsonl(p, recs[:1], sort_keys=True)
    assert p.read_text() == '{"a": 1, "b": [0.5, null]}\n'
    assert storage.read_jsonl(tmp_path / "missing.jsonl") == []


@pytest.mark.parametrize("bad", ['{"a": 1', "3", "[1, 2]", "", "null", b"\xff\xfe"])
def test_a_damaged_line_is_refused_naming_file_and_line(tmp_path, bad):
    p = tmp_path / "log.jsonl"
    bad = bad if isinstance(bad, bytes) else bad.encode()
    p.write_bytes(b'{"a": 1}\n' + bad + b'\n{"a": 3}\n')
    with pytest.raises(OutputError, match=r"log.jsonl' line 2 is damaged"):
        storage.read_jsonl(p)


def test_records_must_be_dicts(tmp_path):
    with pytest.raises(ParameterError, match="must be a dict, got list"):
        storage.append_jsonl(tmp_path / "x", [1])


# ---- checkpoints -------------------------------------------------------------------------------
def trees_example(dtype=jnp.float32):
    return {"model": {"w": jnp.arange(6, dtype=dtype).reshape(2, 3), "b": jnp.ones(2, dtype)},
            "opt": (jnp.asarray(3, jnp.int32), [jnp.zeros(4, dtype)]),
            "rng": {"key": jax.random.key(7), "raw": jax.random.key_data(jax.random.key(1))}}


def raw_leaves(tree):
    return [np.asarray(jax.random.key_data(a)) if storage._is_key(a) else np.asarray(a)
            for a in jax.tree_util.tree_leaves(tree)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_checkpoint_round_trip_with_keys(tmp_path, dtype):
    p = tmp_path / "c.npz"
    trees = trees_example(dtype)
    storage.write_checkpoint(p, trees, {"round": 5, "config": np.asarray("desc")})
    with np.load(p, allow_pickle=False) as f:  # a plain archive with the documented keys
        assert {"model/0", "model/1", "opt/0", "opt/1", "rng/0", "rng/1", "round",
                "config", "__sha256__"} == set(f.files)
    back, arrays = storage.read_checkpoint(p, trees_example(dtype), required=("round",))
    assert int(arrays["round"]) == 5 and str(arrays["config"]) == "desc"
    assert set(arrays) == {"round", "config"}
    for a, b in zip(raw_leaves(back), raw_leaves(trees)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    key = back["rng"]["key"]
    assert jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.normal(key, (3,)),
                                  jax.random.normal(jax.random.key(7), (3,)))


def test_checkpoint_mismatches_name_the_file_and_leaf(tmp_path):
    p = tmp_path / "c.npz"
    storage.write_checkpoint(p, trees_example())
    other = trees_example()
    other["model"]["w"] = jnp.zeros((3, 3))
    with pytest.raises(ParameterError, match=r"c.npz': model leaf 1 has shape \(2, 3\), "
                                             r"expected \(3, 3\)"):
        storage.read_checkpoint(p, other)
    other = trees_example()
    other["opt"] = (jnp.asarray(3, jnp.int32),)
    with pytest.raises(ParameterError, match="opt has 2 leaves, expected 1"):
        storage.read_checkpoint(p, other)
    with pytest.raises(ParameterError, match="model leaf 0 has dtype float32, expected float64"):
        storage.read_checkpoint(p, trees_example(jnp.float64))
    with pytest.raises(CheckpointError, match=r"lacks the entries \['round'\]"):
        storage.read_checkpoint(p, trees_example(), required=("round",))
    with pytest.raises(ParameterError, match="leaf of type function is not an array"):
        storage.write_checkpoint(p, {"m": [lambda: 0]})
    with pytest.raises(ParameterError, match="collides"):
        storage.write_checkpoint(p, {"m": [1.0]}, {"m/0": 2.0})


def test_unreadable_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        storage.read_checkpoint(tmp_path / "none.npz", {})
    with pytest.raises(CheckpointError, match="is a folder"):
        storage.read_checkpoint(tmp_path, {})
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="bare .npy"):
        storage.read_checkpoint(tmp_path / "a.npy", {})
    obj = tmp_path / "obj.npz"  # a pickled object array is never loaded
    np.savez(obj, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="truncated or corrupt") as exc:
        storage.read_checkpoint(obj, {})
    assert "pickle" not in str(exc.value)


CLEAN = None


def _clean_bytes(tmp_path_factory):
    global CLEAN
    if CLEAN is None:
        p = tmp_path_factory.mktemp("clean") / "c.npz"
        storage.write_checkpoint(p, trees_example(), {"round": 3, "config": np.asarray("d")})
        CLEAN = p.read_bytes()
    return CLEAN


damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                  st.integers(0, 7)), min_size=1, max_size=3)),
    st.tuples(st.just("random"), st.binary(max_size=3000)),
)


@settings(max_examples=200)
@given(damage)
def test_a_damaged_checkpoint_is_refused_or_read_unchanged(tmp_path_factory, case):
    """Truncation, bit flips or random bytes: CheckpointError naming the file (never a raw
    NumPy/zip error, never a hint to unpickle), or (flips in bytes that carry no content,
    such as timestamps) exactly the saved trees."""
    clean = _clean_bytes(tmp_path_factory)
    kind, arg = case
    if kind == "truncate":
        data = clean[:int(arg * len(clean))]
    elif kind == "flip":
        b = bytearray(clean)
        for pos, bit in arg:
            b[int(pos * len(b))] ^= 1 << bit
        data = bytes(b)
    else:
        data = arg
    p = tmp_path_factory.mktemp("bad") / "checkpoint.npz"
    p.write_bytes(data)
    try:
        back, arrays = storage.read_checkpoint(p, trees_example())
    except CheckpointError as exc:
        assert "checkpoint.npz" in str(exc) and "pickle" not in str(exc)
        return
    for a, b in zip(raw_leaves(back), raw_leaves(trees_example())):
        np.testing.assert_array_equal(a, b)
    assert int(arrays["round"]) == 3 and str(arrays["config"]) == "d"


# ---- locks -------------------------------------------------------------------------------------
def test_a_second_lock_is_refused_naming_the_owner(tmp_path):
    with storage.locked(tmp_path / "out") as folder:
        info = json.loads((folder / storage.LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["host"]
        with pytest.raises(LockError, match=rf"in use by another writer \(pid {os.getpid()} "
                                            rf"on host .*wait for it to finish"):
            with storage.locked(tmp_path / "out"):
                pass
    assert not (tmp_path / "out" / storage.LOCK_FILE).exists()
    with storage.locked(tmp_path / "out"):  # released: free again
        pass


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=60)
    pid = int(dead.stdout)
    (tmp_path / storage.LOCK_FILE).write_text(json.dumps(
        {"pid": pid, "host": "h", "started": "then"}))
    with storage.locked(tmp_path):
        info = json.loads((tmp_path / storage.LOCK_FILE).read_text())
        assert info["pid"] == os.getpid()
