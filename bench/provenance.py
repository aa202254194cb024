"""How a run folder was made: each invocation's command line and the suite's git commit.

``bench run`` (and ``bench.benchmark``) append one JSON line per invocation to
``OUT/invocations.jsonl``: when it started, the command line (``sys.argv``:
``bench run ...``, or the Python script that called the API), the working
folder, and the git commit of the suite's source with ``dirty`` when it had
uncommitted changes (``None`` outside a git checkout).  A resumed run adds a
line, so the report can show every command that filled the folder.

Example::

    from bench.provenance import read_invocations
    read_invocations("runs/digits")[-1]["command"]   # 'bench run --defense none,dundi ...'
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

#: The file, in a run folder, holding one JSON object per invocation.
FILENAME = "invocations.jsonl"
_SOURCE = Path(__file__).resolve().parent.parent
_recorded: set[Path] = set()


def git_commit(folder: Path = _SOURCE) -> str | None:
    """``4c5930fc39…`` (plus ``-dirty`` when tracked files differ from it) of the checkout holding
    ``folder``; None when git or the checkout is missing."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        changed = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


def record_invocation(out_dir: str | Path) -> None:
    """Append this process's invocation to ``out_dir/invocations.jsonl`` (once per process and
    folder; a folder that cannot take it is left alone: provenance never stops a run)."""
    out_dir = Path(out_dir).resolve()
    if out_dir in _recorded:
        return
    _recorded.add(out_dir)
    argv = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    line = {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(argv), "cwd": os.getcwd(), "git_commit": git_commit()}
    try:
        with open(out_dir / FILENAME, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    except OSError:
        pass


def read_invocations(out_dir: str | Path) -> list[dict]:
    """The folder's recorded invocations, oldest first (empty for a folder from before they were
    recorded); lines that do not parse are skipped."""
    path = Path(out_dir) / FILENAME
    if not path.exists():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return [line for line in lines if isinstance(line, dict)]
