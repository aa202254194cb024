"""The content-addressed cache: stable keys, atomic writes, one computation under concurrency."""

import threading

import numpy as np
import torch

from bench.cache import Cache, config_hash


def test_keys_are_stable_and_sensitive():
    assert config_hash("model", {"a": 1, "b": 0.1}) == config_hash("model", {"b": 0.1, "a": 1})
    assert config_hash("model", {"a": 1, "b": 0.1}) != config_hash("model", {"a": 1, "b": 0.1000001})
    assert config_hash("x", 1) != config_hash("x", 2)


def test_state_and_arrays_round_trip_with_weights_only(tmp_path):
    cache = Cache(tmp_path)
    state = torch.nn.Linear(3, 2).state_dict()
    cache.save_state("models", "k", state)
    loaded = cache.load_state("models", "k")
    assert all(torch.equal(state[name], loaded[name]) for name in state)
    cache.save_arrays("adversarial", "k", x_adv=np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(cache.load_arrays("adversarial", "k")["x_adv"], np.ones((2, 3)))
    assert cache.load_state("models", "missing") is None
    assert not list(tmp_path.rglob("*.tmp")), "temporary files are renamed into place"


def test_concurrent_workers_compute_an_entry_once(tmp_path):
    cache = Cache(tmp_path)
    computed = []

    def worker():
        with cache.lock("models", "shared"):
            if cache.load_state("models", "shared") is None:
                computed.append(1)
                cache.save_state("models", "shared", {"w": torch.ones(1000)})

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert computed == [1]
    assert torch.equal(cache.load_state("models", "shared")["w"], torch.ones(1000))


def test_every_entry_has_a_sidecar_with_its_checksum(tmp_path):
    import hashlib
    import json

    cache = Cache(tmp_path)
    path = cache.save_state("models", "k", {"w": torch.ones(2, 2)}, {"train_seconds": 2.0})
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sidecar["bytes"] == path.stat().st_size and sidecar["record"] == {"train_seconds": 2.0}
    assert cache.load_record("models", "k") == {"train_seconds": 2.0}
    path.write_bytes(path.read_bytes()[:-10])
    assert cache.load_state("models", "k") is None and not path.exists()
