"""The cache checks itself: a damaged or inconsistent entry is reported in one line, deleted and
recomputed, the run goes on, and its numbers equal those of an undamaged run."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cache import Cache, adversarial_claims

from .conftest import TINY, bench

# -- damage --------------------------------------------------------------------------------------


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def flip_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def empty(path):
    path.write_bytes(b"")


def forge_sidecar(path):
    """Make the sidecar's checksum match the (wrong) content: a valid-looking entry."""
    sidecar_path = path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    data = path.read_bytes()
    sidecar.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    sidecar_path.write_text(json.dumps(sidecar))


def zero_weights(path, forge=False):
    state = torch.load(path, weights_only=True)
    torch.save({name: torch.zeros_like(value) for name, value in state.items()}, path)
    if forge:
        forge_sidecar(path)


def nan_weights(path):
    state = torch.load(path, weights_only=True)
    torch.save({name: torch.full_like(value, float("nan")) if value.is_floating_point() else value
                for name, value in state.items()}, path)
    forge_sidecar(path)


def foreign_tensors(path):
    torch.save({"w": torch.ones(3, 3)}, path)
    forge_sidecar(path)


def garbage_sidecar(path):
    path.with_suffix(".json").write_text("{ not json")


def arrays_edit(change):
    def damage(path):
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        change(arrays)
        np.savez(path, **arrays)
        forge_sidecar(path)
    return damage


def outside_ball(arrays):
    arrays["x_adv"] = np.clip(arrays["x_adv"] + 0.5 * (np.arange(arrays["x_adv"].size) % 2).reshape(
        arrays["x_adv"].shape), 0, 1).astype(np.float32)


# -- the cache on its own ------------------------------------------------------------------------

STATE = {"layer.weight": torch.arange(6.0).reshape(2, 3) + 1, "layer.bias": torch.ones(2)}
MODEL_DAMAGE = {
    "truncated": truncate, "random bytes": random_bytes, "bit flip": flip_bit, "empty": empty,
    "zeroed weights": zero_weights, "zeroed weights, forged checksum": lambda p: zero_weights(p, forge=True),
    "NaN weights, forged checksum": nan_weights, "garbage sidecar": garbage_sidecar,
    "zeroed weights, no sidecar": lambda p: (zero_weights(p), p.with_suffix(".json").unlink()),
}


@pytest.mark.parametrize("damage", list(MODEL_DAMAGE))
def test_damaged_model_entry_is_reported_deleted_and_missed(damage, tmp_path, capsys):
    cache = Cache(tmp_path)
    path = cache.save_state("models", "k", STATE, {"train_seconds": 1.5})
    MODEL_DAMAGE[damage](path)
    assert cache.load_state("models", "k") is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: cache entry") and str(path) in lines[0], lines
    assert "damaged" in lines[0] and "recomputing" in lines[0]
    assert not path.exists() and not path.with_suffix(".json").exists()


X = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
X_ADV = np.clip(X + 0.3 * np.sign(np.random.default_rng(1).standard_normal(X.shape)), 0, 1).astype(np.float32)
CLAIMS = adversarial_claims(X, 0.3)
ADV_DAMAGE = {
    "truncated": truncate, "random bytes": random_bytes, "bit flip": flip_bit, "empty": empty,
    "outside the eps ball, forged checksum": arrays_edit(outside_ball),
    "outside [0, 1], forged checksum": arrays_edit(lambda a: a.update(x_adv=a["x_adv"] * 3 - 1)),
    "NaN, forged checksum": arrays_edit(lambda a: a["x_adv"].__setitem__((0, 0, 0, 0), np.nan)),
    "other shape, forged checksum": arrays_edit(lambda a: a.update(x_adv=a["x_adv"][:3])),
    "negative seconds, forged checksum": arrays_edit(lambda a: a.update(seconds=np.float64(-1))),
    "outside the eps ball, no sidecar": lambda p: (arrays_edit(outside_ball)(p), p.with_suffix(".json").unlink()),
    "garbage sidecar": garbage_sidecar,
}


@pytest.mark.parametrize("damage", list(ADV_DAMAGE))
def test_damaged_adversarial_entry_is_reported_deleted_and_missed(damage, tmp_path, capsys):
    cache = Cache(tmp_path)
    path = cache.save_arrays("adversarial", "k", claims=CLAIMS, x_adv=X_ADV, seconds=np.float64(2.0),
                             queries=np.int64(0))
    ADV_DAMAGE[damage](path)
    assert cache.load_arrays("adversarial", "k", claims=CLAIMS, reference=X) is None
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: cache entry") and str(path) in lines[0], lines
    assert not path.exists() and not path.with_suffix(".json").exists()


def test_sound_entries_load_and_claims_bind(tmp_path, capsys):
    cache = Cache(tmp_path)
    cache.save_arrays("adversarial", "k", claims=CLAIMS, x_adv=X_ADV, seconds=np.float64(2.0), queries=np.int64(0))
    np.testing.assert_array_equal(cache.load_arrays("adversarial", "k", claims=CLAIMS, reference=X)["x_adv"], X_ADV)
    # Asked with other claims (say a smaller eps), the entry is not what this run needs.
    assert cache.load_arrays("adversarial", "k", claims=adversarial_claims(X, 0.1), reference=X) is None
    assert "claims other properties" in capsys.readouterr().err


def test_entries_from_before_checksums_are_verified_and_adopted(tmp_path, capsys):
    """A model written by the previous format (flat record, no checksum) is used, keeps its record,
    and gets a checksummed sidecar; an adversarial entry without sidecar likewise."""
    cache = Cache(tmp_path)
    path = cache.path("models", "old", ".pt")
    path.parent.mkdir(parents=True)
    torch.save(STATE, path)
    path.with_suffix(".json").write_text(json.dumps({"train_seconds": 12.5, "train_device": "cpu"}))
    state = cache.load_state("models", "old")
    assert torch.equal(state["layer.weight"], STATE["layer.weight"])
    assert cache.load_record("models", "old") == {"train_seconds": 12.5, "train_device": "cpu"}
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    adv = cache.path("adversarial", "old", ".npz")
    adv.parent.mkdir(parents=True)
    np.savez(adv, x_adv=X_ADV, seconds=np.float64(1.0), queries=np.int64(0))
    assert cache.load_arrays("adversarial", "old", claims=CLAIMS, reference=X) is not None
    assert capsys.readouterr().err == ""


def test_record_round_trips_in_the_sidecar(tmp_path):
    cache = Cache(tmp_path)
    cache.save_state("models", "k", STATE, {"train_seconds": 3.0, "train_device": "cpu (2 threads)"})
    assert cache.load_record("models", "k") == {"train_seconds": 3.0, "train_device": "cpu (2 threads)"}
    assert cache.load_record("models", "missing") == {}


# -- end to end ----------------------------------------------------------------------------------

#: Columns that may differ between two runs of the same cells: wall times and where results came from.
UNSTABLE = {"attack_seconds", "train_seconds", "model_cached", "adv_cached", "finished_at"}


def _numbers(out):
    frame = pd.read_csv(out / "results.csv")
    return frame[[column for column in frame.columns if column not in UNSTABLE]]


def _run(*args):
    """``bench run`` as a fresh process would: no model kept in memory from an earlier run."""
    from bench import runner

    runner._LOADED.clear()
    return bench("run", *args)


def _entries(cache_dir, kind, suffix):
    return sorted((cache_dir / kind).glob(f"*{suffix}"))


@pytest.mark.parametrize("model_damage, adv_damage", [
    (flip_bit, truncate),
    (lambda p: zero_weights(p, forge=True), arrays_edit(outside_ball)),  # valid-looking wrong entries
], ids=["bit flip + truncation", "zeroed weights + outside the eps ball (forged checksums)"])
def test_corrupted_entries_are_recomputed_and_the_results_equal_an_undamaged_run(
        model_damage, adv_damage, tmp_path, cache_dir):
    first = _run(*TINY, "--out", tmp_path / "undamaged", "--cache-dir", cache_dir)
    assert first.exit_code == 0, first.output
    [model] = _entries(cache_dir, "models", ".pt")
    [adversarial] = _entries(cache_dir, "adversarial", ".npz")
    model_damage(model)
    adv_damage(adversarial)
    rerun = _run(*TINY, "--out", tmp_path / "rerun", "--cache-dir", cache_dir)
    assert rerun.exit_code == 0, rerun.output
    warnings = [line for line in rerun.stderr.splitlines() if line.startswith("warning: cache entry")]
    assert len(warnings) == 2, rerun.stderr
    assert str(model) in warnings[0] and str(adversarial) in warnings[1]
    pd.testing.assert_frame_equal(_numbers(tmp_path / "rerun"), _numbers(tmp_path / "undamaged"))
    for entry in (model, adversarial):  # recomputed, and stored with a checksum that matches
        sidecar = json.loads(entry.with_suffix(".json").read_text())
        assert sidecar["sha256"] == hashlib.sha256(entry.read_bytes()).hexdigest()
    # The recomputed entries are sound: a third run is served by the cache, without warnings.
    third = _run(*TINY, "--out", tmp_path / "third", "--cache-dir", cache_dir)
    assert third.exit_code == 0 and "warning" not in third.stderr, third.output
    assert pd.read_csv(tmp_path / "third" / "results.csv")["adv_cached"].all()
    pd.testing.assert_frame_equal(_numbers(tmp_path / "third"), _numbers(tmp_path / "undamaged"))
