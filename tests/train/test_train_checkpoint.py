"""seqjax.train.checkpoint: bit-identical resume, corrupt checkpoints, atomic saves, retention."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import train_tiny
from seqjax.train.checkpoint import MANIFEST, Checkpointer, verify_checkpoint
from seqjax.train.clipping import clip_by_global_norm
from seqjax.train.schedules import warmup_linear_decay
from seqjax.train.step import make_train_step

TOTAL = 10
# The schedule and Adam's moments make the update depend on the restored optimiser state and step.
OPTIMIZER = optax.chain(clip_by_global_norm(1.0), optax.adam(warmup_linear_decay(3e-2, 3, TOTAL)))
STEP = make_train_step(train_tiny.loss_fn, OPTIMIZER)  # shared: compiled once for the module


def _fresh_state(seed):
    params = train_tiny.init(seed)
    state = {"params": params, "opt_state": OPTIMIZER.init(params), "key": jax.random.key(seed)}
    # Committed to the device, as restored arrays are: then the straight and the resumed run hit
    # the same compiled step (an uncommitted input is a different cache entry: one more compile).
    return jax.device_put(state, jax.devices()[0])


def _train(state, start, stop, ckpt=None):
    """Steps start..stop-1; batch i is batch_at(i), the data position after step i is i + 1."""
    params, opt_state, key = state["params"], state["opt_state"], state["key"]
    for i in range(start, stop):
        key, sub = jax.random.split(key)
        params, opt_state, _ = STEP(params, opt_state, train_tiny.batch_at(i), sub)
        if ckpt is not None:
            ckpt.maybe_save(i + 1, {"params": params, "opt_state": opt_state, "key": key}, data_position=i + 1)
    return {"params": params, "opt_state": opt_state, "key": key}


def _assert_bit_identical(a, b):
    a = jax.tree.map(lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, a)
    b = jax.tree.map(lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))


def test_kill_and_resume_gives_bit_identical_parameters(tmp_path):
    straight = _train(_fresh_state(0), 0, TOTAL)

    with Checkpointer(tmp_path, save_every=3) as ckpt:
        _train(_fresh_state(0), 0, 8, ckpt)  # "killed" after step 8; last checkpoint at step 6
        assert ckpt.steps() == [3, 6]

    # A new process: a fresh (different) state, then restore and continue.
    with Checkpointer(tmp_path, save_every=3) as ckpt:
        restored = ckpt.restore_latest(template=_fresh_state(seed=99))
        assert (restored.step, restored.data_position) == (6, 6)
        resumed = _train(restored.state, restored.data_position, TOTAL, ckpt)
        assert ckpt.save(TOTAL, resumed, data_position=TOTAL)  # the final save
        assert ckpt.steps() == [6, 9, 10]

    _assert_bit_identical(resumed, straight)


def _small_state(value):
    return {"w": jnp.full((4, 3), value, jnp.float32), "key": jax.random.key(int(value))}


def _save_steps(path, steps, **kwargs):
    ckpt = Checkpointer(path, save_every=1, **kwargs)
    for s in steps:
        ckpt.maybe_save(s, _small_state(float(s)), data_position={"epoch": 0, "index": s})
    return ckpt


def _largest_file(step_dir):
    return max((f for f in step_dir.rglob("*") if f.is_file() and f.name != MANIFEST), key=lambda f: f.stat().st_size)


def test_truncated_file_raises_a_clear_error_and_the_previous_checkpoint_restores(tmp_path):
    ckpt = _save_steps(tmp_path, [1, 2])
    victim = _largest_file(ckpt.step_dir(2))
    victim.write_bytes(victim.read_bytes()[:-7])

    with pytest.raises(ValueError, match="truncated") as err:
        ckpt.restore(_small_state(0.0), 2)
    assert str(victim) in str(err.value)
    with pytest.raises(ValueError, match="newest valid checkpoint is step 1"):
        ckpt.restore_latest(_small_state(0.0), fallback=False)

    with pytest.warns(UserWarning) as record:
        restored = ckpt.restore_latest(_small_state(0.0))
    messages = [str(w.message) for w in record]
    assert any("skipping checkpoint step 2" in m for m in messages)
    assert any("moved corrupt checkpoint" in m for m in messages)
    assert restored.step == 1 and restored.data_position == {"epoch": 0, "index": 1}
    np.testing.assert_array_equal(restored.state["w"], 1.0)
    # The corrupt one was moved aside, so the resumed run can save step 2 again.
    assert ckpt.steps() == [1] and any((tmp_path / "corrupt").iterdir())
    assert ckpt.maybe_save(2, _small_state(2.0))
    assert ckpt.restore_latest(_small_state(0.0)).step == 2
    ckpt.close()


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: _largest_file(d).unlink(), "is missing"),
        (lambda d: (d / MANIFEST).unlink(), "incomplete"),
        (lambda d: _flip_last_byte(_largest_file(d)), "SHA-256"),
        (lambda d: (d / MANIFEST).write_text("{not json"), "unreadable"),
    ],
)
def test_each_kind_of_damage_is_named(tmp_path, damage, match):
    ckpt = _save_steps(tmp_path, [1])
    verify_checkpoint(ckpt.step_dir(1))  # intact
    damage(ckpt.step_dir(1))
    with pytest.raises(ValueError, match=match):
        ckpt.restore(_small_state(0.0), 1)
    with pytest.raises(ValueError, match="no valid checkpoint"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ckpt.restore_latest(_small_state(0.0))
    ckpt.close()


def _flip_last_byte(file):
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))


def test_saves_are_atomic_renames_of_a_temporary_directory(tmp_path, monkeypatch):
    async_path = pytest.importorskip("orbax.checkpoint._src.path.async_path")
    calls = []
    original = async_path.rename

    async def recording_rename(src, dst):
        calls.append((str(src), str(dst)))
        return await original(src, dst)

    monkeypatch.setattr(async_path, "rename", recording_rename)
    ckpt = _save_steps(tmp_path, [1])
    assert any(".orbax-checkpoint-tmp" in src and dst == str(ckpt.step_dir(1)) for src, dst in calls), calls

    # A run killed before the rename leaves only a temporary directory, which is never read.
    async def dying_rename(src, dst):
        raise RuntimeError("killed while saving")

    monkeypatch.setattr(async_path, "rename", dying_rename)
    with pytest.raises(RuntimeError, match="killed"):
        ckpt.maybe_save(2, _small_state(2.0))
    ckpt.close()
    monkeypatch.setattr(async_path, "rename", original)
    assert not (tmp_path / "2").exists() and any(p.name.startswith("2.orbax-checkpoint-tmp") for p in tmp_path.iterdir())
    with Checkpointer(tmp_path, save_every=1) as again:
        assert again.steps() == [1]
        assert again.restore_latest(_small_state(0.0)).step == 1


def test_retention_keeps_the_newest_and_save_every_is_respected(tmp_path):
    ckpt = Checkpointer(tmp_path, save_every=2, max_to_keep=2)
    saved = [ckpt.maybe_save(s, _small_state(float(s))) for s in range(1, 8)]
    assert saved == [False, True, False, True, False, True, False]
    assert ckpt.save(7, _small_state(7.0)) and not ckpt.save(7, _small_state(7.0))  # no duplicate
    assert ckpt.steps() == [6, 7]
    ckpt.close()
    with pytest.raises(ValueError, match="max_to_keep"):
        Checkpointer(tmp_path, save_every=1, max_to_keep=1)


def test_typed_keys_and_legacy_keys_round_trip(tmp_path):
    state = {
        "threefry": jax.random.key(5),
        "rbg": jax.random.key(6, impl="rbg"),
        "split": jax.random.split(jax.random.key(7), 3),
        "legacy": jax.random.PRNGKey(8),
    }
    template = {
        "threefry": jax.random.key(0),
        "rbg": jax.random.key(0, impl="rbg"),
        "split": jax.random.split(jax.random.key(0), 3),
        "legacy": jax.random.PRNGKey(0),
    }
    with Checkpointer(tmp_path, save_every=1) as ckpt:
        ckpt.save(0, state)
        restored = ckpt.restore_latest(template).state
    for name in ("threefry", "rbg", "split"):
        assert jax.random.key_impl(restored[name]) == jax.random.key_impl(state[name])
    _assert_bit_identical(restored, state)
    # The restored key draws the same numbers.
    np.testing.assert_array_equal(jax.random.normal(restored["rbg"], (3,)), jax.random.normal(state["rbg"], (3,)))


def test_wrong_template_and_bad_metadata_are_clear(tmp_path):
    with Checkpointer(tmp_path, save_every=1) as ckpt:
        ckpt.save(1, _small_state(1.0))
        with pytest.raises(ValueError, match="could not restore checkpoint .*template"):
            ckpt.restore({"w": jnp.zeros((4, 3)), "other": jnp.zeros(2)}, 1)
        with pytest.raises(ValueError, match="JSON-serialisable"):
            ckpt.save(2, _small_state(2.0), data_position=object())
        assert ckpt.restore_latest(_small_state(0.0)).step == 1
    assert Checkpointer(tmp_path / "empty", save_every=1).restore_latest(_small_state(0.0)) is None


def test_metadata_comes_without_a_template_and_latest_valid_skips_damage(tmp_path):
    """A run whose state's structure depends on how far it got reads the metadata first, builds
    the template from it, then restores."""
    ckpt = _save_steps(tmp_path, [1, 2, 3])
    meta = ckpt.restore_metadata(3)
    assert meta.state is None and (meta.step, meta.data_position) == (3, {"epoch": 0, "index": 3})
    assert ckpt.latest_valid() == 3
    (ckpt.step_dir(3) / MANIFEST).unlink()
    with pytest.raises(ValueError, match="incomplete"):
        ckpt.restore_metadata(3)
    with pytest.raises(ValueError, match="newest valid checkpoint is step 2"):
        ckpt.latest_valid(fallback=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ckpt.latest_valid() == 2
    assert [str(w.message).split(":")[0].split(" /")[0] for w in caught] == [
        "skipping checkpoint step 3", "moved corrupt checkpoint"]
    assert ckpt.steps() == [1, 2] and any((tmp_path / "corrupt").iterdir())  # 3 moved aside
    ckpt.close()
    assert Checkpointer(tmp_path / "empty", save_every=1).latest_valid() is None
