"""I/O faults: read-only or full output and cache folders, a report to an unwritable path, file modes.

Running as root, permission bits do not stop writes, so read-only and full disks are simulated by
making the operating system calls fail with the errors they give (EACCES, EROFS, ENOSPC)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile

import numpy as np
import pytest

from bench.cache import Cache, write_bytes_atomic
from bench.errors import BenchError
from bench.results import ResultsStore

from .conftest import TINY, assert_one_line_error, bench, snapshot

FAULTS = {"read-only": (errno.EROFS, "read-only file system"), "permission": (errno.EACCES, "permission denied"),
          "disk full": (errno.ENOSPC, "no space left on the device")}


def _failing_under(monkeypatch, folder, code):
    """Every new file under ``folder`` fails with ``code``, as on a read-only, locked or full disk."""
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(folder)):
            raise OSError(code, os.strerror(code), str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("where", ["--out", "cache folder"])
def test_unwritable_out_or_cache_is_one_error_before_any_work(fault, where, tmp_path, monkeypatch):
    code, words = FAULTS[fault]
    out, cache = tmp_path / "out", tmp_path / "cache"
    out.mkdir()
    (out / "results.csv").write_text("an earlier run's results\n")
    before = snapshot(out)
    _failing_under(monkeypatch, out if where == "--out" else cache, code)
    result = bench("run", *TINY, "--out", out, "--cache-dir", cache)
    line = assert_one_line_error(result, where, "not writable", words)
    assert str(out if where == "--out" else cache) in line
    assert snapshot(out) == before, "nothing lost or half-written"
    assert not list(cache.rglob("*.pt")) if cache.exists() else True


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_write_names_the_path_and_leaves_nothing(fault, tmp_path, monkeypatch):
    code, words = FAULTS[fault]
    cache = Cache(tmp_path / "cache")
    cache.save_arrays("adversarial", "old", x_adv=np.zeros((2, 2), np.float32))
    before = snapshot(tmp_path)
    real_replace = os.replace

    def replace(source, target):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(BenchError, match=words) as error:
        cache.save_arrays("adversarial", "new", x_adv=np.ones((2, 2), np.float32))
    assert str(cache.path("adversarial", "new", ".json")) in error.value.message
    with pytest.raises(BenchError, match=words):
        ResultsStore(tmp_path / "run").save({"cell_key": "k"}, {"a": np.zeros(1)})
    monkeypatch.setattr(os, "replace", real_replace)
    assert snapshot(tmp_path) == before, "no temporary or half-written file left, nothing old changed"


def test_report_to_an_unwritable_path_is_one_error(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert bench("run", *TINY, "--out", out, "--cache-dir", tmp_path / "cache").exit_code == 0
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert_one_line_error(bench("report", out, "--out", blocker / "report.html"),
                          f"cannot write {blocker / 'report.html'}")
    _failing_under(monkeypatch, tmp_path / "locked", errno.EACCES)
    assert_one_line_error(bench("report", out, "--out", tmp_path / "locked" / "report.html"),
                          "permission denied", str(tmp_path / "locked" / "report.html"))
    assert not (tmp_path / "locked" / "report.html").exists()


def test_files_are_created_with_the_usual_mode(tmp_path):
    """Not 0600 (mkstemp's mode): 0666 less the umask, like any file the user creates."""
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    out = tmp_path / "run"
    assert bench("run", *TINY, "--out", out, "--cache-dir", tmp_path / "cache").exit_code == 0
    written = [out / "results.csv", *(out / "cells").iterdir(), *(tmp_path / "cache").rglob("*.pt"),
               *(tmp_path / "cache").rglob("*.npz")]
    assert len(written) >= 5
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == expected, path
    write_bytes_atomic(tmp_path / "x", b"x")
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == expected
