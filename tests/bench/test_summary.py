"""The end summary, the progress lines, the cheap name registry and the sanity cells' skip rule
(no attack runs here: synthetic rows)."""

import io

import pandas as pd

import defenses
from attacks import ThreatModel
from bench.flags import sanity_cells
from bench.plugins import declared
from bench.progress import Progress
from bench.runner import Cell
from bench.summary import format_summary


def _row(defense, attack, threat, eps, robust, norm="linf", key=None):
    return {"dataset": "digits", "defense": defense, "attack": attack, "threat_model": threat, "eps": eps,
            "norm": norm, "clean_accuracy": 0.98, "robust_accuracy": robust, "n_eval": 200, "seed": 0,
            "check": "", "cell_key": key or f"{defense}-{attack}-{threat}-{eps}"}


def test_summary_leads_with_worst_case_and_leaves_out_what_does_not_apply():
    rows = pd.DataFrame([
        _row("none", "fgsm", "whitebox", 0.3, 0.10), _row("none", "deepfool", "whitebox", float("nan"), 0.0, "l2"),
        _row("none", "square", "blackbox", 0.3, 0.05),
        _row("dundi", "fgsm", "whitebox", 0.3, 0.40), _row("dundi", "deepfool", "whitebox", float("nan"), 0.2, "l2"),
        _row("dundi", "square", "blackbox", 0.3, 0.30),
    ])
    lines = format_summary(rows, attacks=["fgsm", "deepfool", "square"]).splitlines()
    assert lines[0] == "digits: 200 test images per cell, seed 0; bounded attacks at L∞ ε = 0.3"
    assert lines[1].startswith("worst case per defense")
    assert lines[2].split() == ["none", "clean", "0.980", "worst", "0.000", "whitebox", "deepfool"]
    assert lines[3].split() == ["dundi", "clean", "0.980", "worst", "0.200", "whitebox", "deepfool"]
    # One table per set of attacks: fgsm/deepfool white-box, square black-box; no empty columns.
    assert lines[4].split() == ["robust", "accuracy", "clean", "fgsm", "deepfool"]
    assert lines[5].split() == ["whitebox", "none", "0.980", "0.100", "0.000"]
    assert lines[7].split() == ["robust", "accuracy", "clean", "square"]
    assert "nan" not in "\n".join(lines).lower()


def test_summary_names_budgets_only_when_an_attack_has_several():
    rows = pd.DataFrame([_row("none", "pgd", "whitebox", 0.1, 0.5), _row("none", "pgd", "whitebox", 0.3, 0.0)])
    text = format_summary(rows)
    assert "pgd@0.1" in text and "pgd@0.3" in text and "bounded attacks at" not in text


def test_progress_lines_without_a_terminal():
    stream = io.StringIO()
    progress = Progress(stream=stream, tty=False)
    progress.phase(2)
    row = _row("none", "pgd", "whitebox", 0.3, 0.0)
    progress.done(row, 1.25)
    progress.phase(1, "sanity cells")
    progress.done(row)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "[1/2] digits/none/pgd@0.3/whitebox: clean 0.980, robust 0.000 (1.2 s)",
        "[sanity cells 1/1] digits/none/pgd@0.3/whitebox: clean 0.980, robust 0.000"]


def test_progress_on_a_terminal_redraws_one_line_and_a_disabled_one_is_silent():
    stream = io.StringIO()
    progress = Progress(stream=stream, tty=True)
    progress.phase(1)
    progress.start(Cell("digits", "none", "pgd", ThreatModel.WHITEBOX, 0.3))
    progress.done(_row("none", "pgd", "whitebox", 0.3, 0.0))
    progress.close()
    assert "pgd eps=0.3 on digits/none whitebox" in stream.getvalue() and "\n" not in stream.getvalue().strip("\n")
    quiet = io.StringIO()
    silent = Progress(enabled=False, stream=quiet, tty=False)
    silent.phase(1)
    silent.done(_row("none", "pgd", "whitebox", 0.3, 0.0))
    assert quiet.getvalue() == ""


def test_cheap_defense_names_match_the_registry():
    # bench list and name checks read the built-in modules' source; they must agree with the registry.
    records = [record for module in defenses._BUILT_IN for record in declared(module, "Defense")]
    built_in = {name: d for name, d in defenses.REGISTRY.items() if d.origin == "built-in"}
    assert [record["name"] for record in records] == list(built_in)
    assert all(record["summary"] == built_in[record["name"]].summary for record in records)


def test_sanity_cells_are_skipped_for_defenses_the_grid_already_breaks():
    cells = [Cell("digits", name, "pgd", ThreatModel.WHITEBOX) for name in ("none", "distillation")]
    results = pd.DataFrame([_row("none", "pgd", "whitebox", 0.3, 0.0, key=cells[0].key),
                            _row("distillation", "pgd", "whitebox", 0.3, 0.9, key=cells[1].key)])
    assert {c.defense for c in sanity_cells(cells)} == {"none", "distillation"}
    kept = sanity_cells(cells, results)
    assert [(c.defense, c.check) for c in kept] == [("distillation", "large-eps"), ("distillation", "more-steps")]
