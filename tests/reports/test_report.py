"""`bench report` on real digits runs: the numbers it shows, its labels, and a real browser render."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bench.flags import FLAG_COLUMNS
from bench.cli import cli
from bench.metrics import wilson_interval
from bench.results import ResultsStore
from bench.worst_case import summary
from reports import plots
from reports.html import comparison_table, defense_labels, difference_reading, grid, load_run, training_cost
from reports.tables import attack_label

DEFENSES = "none,adv-fgsm"
ATTACKS = "fgsm,deepfool"
GRID = ["--attack", ATTACKS, "--eps", "0.1,0.3", "--samples", "40", "--no-flags", "-q"]


def _bench(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run with two defenses × two attacks (one swept over ε), a weakened run, and the report of both."""
    root = tmp_path_factory.mktemp("report")
    main, weak = root / "digits", root / "digits-weak"
    _bench("run", "--defense", DEFENSES, *GRID, "--out", main)
    _bench("run", "--defense", "none", "--defense-option", "epochs=1", *GRID, "--out", weak)
    report, compared = root / "report.html", root / "compared.html"
    _bench("report", main, "--out", report)
    _bench("report", main, weak, "--out", compared)
    return main, weak, report, compared


def test_report_is_one_self_contained_file(runs):
    _, _, report, _ = runs
    html = report.read_text()
    sources = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    # Nothing to fetch: one inline script (sorting, opening galleries), no stylesheet, font or URL.
    assert re.findall(r"<script[^>]*>", html) == ["<script>"]
    assert not re.search(r"<link|@import|url\(|https?://", html)
    alts = re.findall(r'alt="([^"]+)"', html)
    # Per threat model and norm (fgsm's L∞ budgets apart from deepfool's unbudgeted L2 row): a
    # heatmap for white-box, two for transfer (defense rate, robust accuracy); ε-curves for fgsm
    # under each threat model (deepfool was asked for no L2 budget); a gallery per threat model ×
    # defense; sizes and times.
    assert sum(a.startswith("heatmap of") for a in alts) == 2 * 3
    assert {a.rpartition(", ")[2] for a in alts if a.startswith("heatmap of")} == {"L∞", "L2"}
    assert sum(a.startswith("robustness curves") for a in alts) == 2
    assert sum(a.startswith("gallery digits") for a in alts) == 4
    assert sum(a.startswith("perturbation sizes") for a in alts) == 1
    assert sum(a.startswith("attack times") for a in alts) == 1
    assert "delta heatmap" not in alts and "Comparison" not in html
    # `none` crafted the transfer examples: its transfer row would repeat its white-box row (0 by
    # construction), so the transfer section leaves it out and says so.
    transfer = html.partition('id="run-1-digits-transfer"')[2]
    assert "Not shown here: none, the model the transfer examples were crafted on" in transfer
    section = re.split(r"<h[34] ", transfer, maxsplit=1)[0]
    assert re.search(r"<th[^>]*>\s*adv-fgsm\s*</th>", section)
    assert not re.search(r"<th[^>]*>\s*none\s*</th>", section)
    for fact in ("torch", "ART", "sklearn", "1.20.1", "adv-fgsm"):
        assert fact in html
    # Provenance: the command line and the suite's git commit (OUT/invocations.jsonl).
    assert re.search(r"<dt>command</dt><dd>[^<]+</dd>", html)
    assert re.search(r"<dt>git commit</dt><dd>[0-9a-f]{40}(-dirty)?</dd>", html)


def test_several_runs_are_shown_and_compared(runs):
    *_, compared = runs
    html = compared.read_text()
    alts = re.findall(r'alt="([^"]+)"', html)
    assert sum(a == "delta heatmap" for a in alts) == 2  # white-box and transfer
    assert sum(a.startswith("heatmap of") for a in alts) == 6 + 6  # each run's own
    assert "Comparison with digits" in html and "digits-weak vs digits" in html


def test_tables_and_heatmaps_show_the_runs_numbers(runs):
    main, *_ = runs
    run = load_run(main)
    csv = pd.read_csv(main / "results.csv")
    white = run.frame[run.frame["threat_model"] == "whitebox"]
    table = grid(white, "robust_accuracy")
    assert list(table.index) == ["none", "adv-fgsm"]  # registry order
    # Registry order (fgsm before deepfool), budgets ascending, every column naming its norm;
    # --eps (L∞) asks for no L2 budget, so deepfool has its unbudgeted row only.
    assert list(table.columns) == ["fgsm L∞ ε=0.1", "fgsm L∞ ε=0.3", "deepfool L2"]
    for _, row in csv[csv["threat_model"] == "whitebox"].iterrows():
        assert table.loc[row["defense"], attack_label(row)] == row["robust_accuracy"]
    figure = plots.heatmap(table, "digits · whitebox · robust accuracy")
    shown = [text.get_text() for text in figure.axes[0].texts]
    assert shown == [f"{v:.2f}" for v in table.to_numpy().ravel()]


def test_gallery_and_perturbation_use_the_stored_images(runs):
    main, *_ = runs
    run = load_run(main)
    cell = run.frame[(run.frame["attack"] == "deepfool") & (run.frame["threat_model"] == "whitebox")].iloc[0]
    arrays = ResultsStore(main).arrays(cell["cell_key"])
    # The gallery images are the first evaluated images, with their labels and predictions.
    assert arrays["gallery_x"].shape[0] == 8 and arrays["gallery_x"].shape[1:] == (1, 8, 8)
    assert np.isclose(arrays["l2"].mean(), cell["mean_l2"])
    first = {key: arrays[key][:2] for key in ("y", "pred_clean", "pred_adv")}
    figure = plots.gallery([{"label": "deepfool", "x": arrays["gallery_x"][:2],
                             "x_adv": arrays["gallery_x_adv"][:2], **first}], "g")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0] == f"{arrays['y'][0]}→{arrays['pred_clean'][0]}"
    assert titles[1] == f"adv→{arrays['pred_adv'][0]}"
    assert titles[2].startswith("Δ×")


def test_comparison_gives_deltas_and_cells_only_one_run_has(runs):
    main, weak, *_ = runs
    reference, other = load_run(main), load_run(weak)
    table, only = comparison_table(reference, other)
    assert len(table) == len(other.frame)  # every weakened cell has its reference
    for (dataset, threat, defense, attack), row in table.iterrows():
        ref = reference.frame.query("threat_model == @threat and defense_label == @defense "
                                    "and attack_label == @attack").iloc[0]
        now = other.frame.query("threat_model == @threat and attack_label == @attack").iloc[0]
        expected = now["robust_accuracy"] - ref["robust_accuracy"]
        assert row[("robust_accuracy", "Δ")] == pytest.approx(expected)
    # One epoch of training costs clean accuracy, visibly.
    assert (table[("clean_accuracy", "Δ")] < -0.05).all()
    assert len(only["digits"]) == len(reference.frame) - len(other.frame)
    assert all("adv-fgsm" in cell for cell in only["digits"]) and only["digits-weak"] == []


def test_two_configurations_of_a_defense_are_never_averaged(runs, tmp_path):
    main, weak, *_ = runs
    mixed = tmp_path / "mixed"  # one folder holding `none` trained for 30 and for 1 epoch
    mixed.mkdir()
    both = pd.concat([pd.read_csv(main / "results.csv"), pd.read_csv(weak / "results.csv")])
    both.to_csv(mixed / "results.csv", index=False)
    labels = set(defense_labels(pd.read_csv(mixed / "results.csv")))
    assert labels == {"none [epochs=1]", "none [epochs=30]", "adv-fgsm"}
    out = tmp_path / "mixed.html"
    _bench("report", mixed, "--out", out)
    assert "none [epochs=1]" in out.read_text()


def test_subset_datasets_are_labelled_and_a_bare_csv_is_enough(runs, tmp_path):
    main, *_ = runs
    subset = tmp_path / "subset"  # only results.csv: no per-cell arrays, so no gallery
    subset.mkdir()
    pd.read_csv(main / "results.csv").assign(dataset_is_subset=True).to_csv(subset / "results.csv", index=False)
    _bench("report", subset, "--out", tmp_path / "subset.html")
    html = (tmp_path / "subset.html").read_text()
    assert re.search(r"digits <span class=\"badge subset\">SUBSET</span>", html)
    assert "full</span>" not in html and 'alt="gallery' not in html and 'alt="heatmap of' in html
    assert "SUBSET" not in runs[2].read_text()


@pytest.fixture(scope="module")
def flagged(runs, tmp_path_factory):
    """The main run with a saved red flag on adv-fgsm (what `bench run` writes to OUT/flags.csv), and its report."""
    main, *_ = runs
    folder = tmp_path_factory.mktemp("flagged") / "digits"
    shutil.copytree(main, folder)
    cells = pd.read_csv(main / "results.csv")
    key = cells[cells["defense"] == "adv-fgsm"]["cell_key"].iloc[0]
    pd.DataFrame([["digits", "adv-fgsm", "blackbox-beats-whitebox", "blackbox square@0.3 leaves 0.000", key]],
                 columns=FLAG_COLUMNS).to_csv(folder / "flags.csv", index=False)
    report = folder.parent / "flagged.html"
    _bench("report", folder, "--out", report)
    return folder, report


def test_red_flags_come_first_and_flagged_defenses_are_marked_in_the_ranking(runs, flagged):
    folder, report = flagged
    html = report.read_text()
    sections = re.findall(r'<section id="([^"]+)"', html)
    assert sections[:2] == ["red-flags", "ranking"] and html.index("<section") == html.index('<section id="red-flags"')
    flags = html[html.index('id="red-flags"'):html.index('id="ranking"')]
    assert "1 FLAG</span> on digits · adv-fgsm" in flags and "blackbox-beats-whitebox" in flags
    ranking = html[html.index('id="ranking"'):html.index("</section>", html.index('id="ranking"'))]
    rows = re.findall(r"<tr( class=\"flagged-row\")?><td>(\d+)</td>\s*<td><b>([^<]+)</b>", ranking)
    assert sorted(int(rank) for _, rank, _ in rows) == [1, 2]
    assert {name: bool(flag) for flag, _, name in rows} == {"none": False, "adv-fgsm": True}
    assert "⚑ FLAGGED" in ranking
    # The run without flags.csv (--no-flags) says so instead of showing nothing.
    unchecked = runs[2].read_text()
    assert "NOT CHECKED" in unchecked[:unchecked.index('id="ranking"')]


def test_ranking_is_the_worst_case_over_every_attack_with_its_interval(runs):
    main, *_ = runs
    run = load_run(main)
    worst = summary(run.frame, run.store.arrays)
    at = worst[(worst["norm"] == "linf") & (worst["eps"] == 0.3) & (worst["scope"] == "any")]
    assert len(at) == 2  # none and adv-fgsm, at the standard budget
    html = runs[2].read_text()
    ranking = html[html.index('id="ranking"'):html.index("</section>", html.index('id="ranking"'))]
    expected = at.sort_values("worst_case_accuracy", ascending=False)
    shown = re.findall(r"<td><b>([^<]+)</b>", ranking)
    assert shown[:2] == list(expected["defense"])
    for row in expected.itertuples():
        # Never above any single attack's number; the interval is Wilson's of count / n.
        cells = run.frame[(run.frame["defense"] == row.defense) & (run.frame["eps"] == 0.3)]
        assert row.worst_case_accuracy <= cells["robust_accuracy"].min() + 1e-9
        low, high = wilson_interval(row.worst_case_accuracy_count, row.worst_case_accuracy_n)
        assert f"{row.worst_case_accuracy:.3f} [{low:.2f}, {high:.2f}]" in ranking
    # Beside robustness, what each defense cost to train (the cache's record, so also when cached).
    assert ">training</th>" in ranking
    for defense in expected["defense"]:
        record = run.frame[run.frame["defense"] == defense].iloc[0]
        assert record["train_seconds"] > 0 and record["train_device"] == "cpu"
        assert training_cost(record) in ranking and training_cost(record).endswith("(cpu)")


def test_tables_show_n_and_the_interval_beside_every_number(runs):
    html = runs[2].read_text()
    run = load_run(runs[0])
    cell = run.frame[(run.frame["threat_model"] == "whitebox") & (run.frame["attack"] == "fgsm")].iloc[0]
    low, high = wilson_interval(cell["robust_accuracy_count"], cell["robust_accuracy_n"])
    assert f"{cell['robust_accuracy']:.3f} [{low:.2f}, {high:.2f}] n=40" in html
    assert "bars: 95% Wilson intervals" not in html  # curves are images; their title is drawn, not text


def test_comparison_says_within_intervals_and_when_n_differs():
    row = pd.Series({"robust_accuracy ref": 0.50, "robust_accuracy now": 0.55,
                     "robust_accuracy_ci_low ref": 0.40, "robust_accuracy_ci_high ref": 0.60,
                     "robust_accuracy_ci_low now": 0.45, "robust_accuracy_ci_high now": 0.65,
                     "robust_accuracy_n ref": 100, "robust_accuracy_n now": 100})
    assert difference_reading(row, "robust_accuracy") == "within intervals"
    apart = row.copy()
    apart[["robust_accuracy now", "robust_accuracy_ci_low now", "robust_accuracy_ci_high now",
           "robust_accuracy_n now"]] = [0.9, 0.8, 0.95, 40]
    assert difference_reading(apart, "robust_accuracy") == "beyond intervals; n differs: 100 → 40"


def test_report_of_a_folder_without_results_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert "results.csv not found" in result.output and "Traceback" not in result.output


# --- a real browser ---------------------------------------------------------------------------

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)

# Appended to a copy of the report: after load, write what the page shows into the DOM; then sort a
# table, follow the last gallery's link, open every <details> and measure what overflows.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const shown = (el) => { const r = el.getBoundingClientRect(); return r.width > 50 && r.height > 50; };
  const probe = {
    images: images.length,
    decoded: images.filter((img) => img.complete && img.naturalWidth > 0).length,
    heatmaps_shown: images.filter((img) => img.alt.startsWith("heatmap of") && shown(img)).length,
    gallery_shown: images.filter((img) => img.alt.startsWith("gallery") && shown(img)).length,
    tables_shown: [...document.querySelectorAll("table.data")].filter(shown).length,
    first_section: document.querySelector("section").id,
    flags_top: document.getElementById("red-flags").getBoundingClientRect().top,
    tops: [...document.querySelectorAll("section")].map((s) => s.getBoundingClientRect().top),
    toc: [...document.querySelectorAll("#toc a")].map((a) => a.getAttribute("href")),
    toc_missing: [...document.querySelectorAll("#toc a")].filter(
      (a) => !document.getElementById(a.getAttribute("href").slice(1))).map((a) => a.getAttribute("href")),
  };
  const header = document.querySelector("#ranking th.sort:nth-child(2)");
  const names = () => [...document.querySelectorAll("#ranking tbody tr td:nth-child(2) b")].map((b) => b.textContent);
  const before = names();
  header.click();
  probe.sorted = { before, after: names(), state: header.getAttribute("aria-sort") };
  const galleries = [...document.querySelectorAll(".galleries details")];
  const last = galleries[galleries.length - 1];
  probe.gallery_link = document.querySelectorAll(`a[href="#${last.id}"]`).length;
  probe.last_gallery_open_before = last.open;
  location.hash = last.id;
  setTimeout(() => {
    probe.last_gallery_open_after = last.open;
    for (const details of document.querySelectorAll("details")) details.open = true;
    const scrolls = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
    const boxed = (el) => { for (let node = el.parentElement; node; node = node.parentElement) if (scrolls(node)) return node; };
    const page = document.documentElement.clientWidth;
    probe.tables = document.querySelectorAll("table").length;
    probe.overflowing = [...document.querySelectorAll("table")].filter((table) => {
      const box = boxed(table);
      return box ? box.getBoundingClientRect().right > page + 1
                 : table.scrollWidth > table.parentElement.clientWidth || table.getBoundingClientRect().right > page + 1;
    }).map((table) => table.querySelector("th") ? table.querySelector("th").textContent.trim() : "?");
    probe.unboxed = [...document.querySelectorAll("table")].filter((table) => !boxed(table)).length;
    probe.page_overflow = document.documentElement.scrollWidth - page;
    document.body.setAttribute("data-probe", JSON.stringify(probe));
  }, 200);
});
</script></body>"""


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install "
                                    "chromium; .ci/run installs it)")


def _chromium(tmp_path, *args):
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path)})


def _probe(tmp_path, report, width):
    probed = tmp_path / f"probed-{width}.html"
    probed.write_text(report.read_text().replace("</body>", PROBE))
    page = _chromium(tmp_path, f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom",
                     probed.as_uri())
    assert page.returncode == 0, page.stderr[-2000:]
    probe = json.loads(re.search(r'data-probe="([^"]*)"', page.stdout).group(1).replace("&quot;", '"'))
    console = [line for line in page.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    return probe


@needs_chromium
def test_chromium_renders_heatmaps_tables_and_gallery(flagged, tmp_path):
    _, report = flagged
    probe = _probe(tmp_path, report, 1400)
    assert probe["images"] == report.read_text().count("<img ") and probe["decoded"] == probe["images"], probe
    # Heatmaps shown, their tables a click away; the first gallery open.
    assert probe["heatmaps_shown"] == 6 and probe["gallery_shown"] >= 1 and probe["tables_shown"] >= 1, probe
    # The red flags are the first section, laid out above every other one, on the first screen.
    assert probe["first_section"] == "red-flags" and probe["flags_top"] == min(probe["tops"]), probe
    assert 0 <= probe["flags_top"] < 1000, probe
    # A table of contents down to each threat model and norm, every link landing on its section.
    assert {"#red-flags", "#ranking"} <= set(probe["toc"]) and not probe["toc_missing"], probe
    assert any(href.endswith("-whitebox-linf") for href in probe["toc"]), probe["toc"]
    assert any(href.endswith("-transfer-l2") for href in probe["toc"]), probe["toc"]
    # A header click sorts (the ranking by defense name); any gallery opens from its link.
    assert probe["sorted"]["after"] == sorted(probe["sorted"]["before"]), probe["sorted"]
    assert probe["sorted"]["state"] == "ascending", probe["sorted"]
    assert probe["gallery_link"] >= 1 and not probe["last_gallery_open_before"], probe
    assert probe["last_gallery_open_after"], probe
    # And it paints: the first screen (red flags, ranking: text on white) is not blank, and the
    # page below it holds the coloured heatmaps.
    shot = tmp_path / "shot.png"
    painted = _chromium(tmp_path, "--window-size=1400,6000", f"--screenshot={shot}", report.as_uri())
    assert painted.returncode == 0 and shot.exists(), painted.stderr[-2000:]
    pixels = plots.plt.imread(shot)[..., :3]
    first_screen = pixels[:1000]
    assert (first_screen.min(axis=2) < 0.9).mean() > 0.02, "the first screen is blank"
    assert (pixels.std(axis=2) > 0.1).mean() > 0.02, "no coloured heatmap on the page"


@needs_chromium
@pytest.mark.parametrize("width", [1400, 700])
def test_no_table_is_wider_than_its_container(flagged, tmp_path, width):
    """Every table (every <details> opened) fits its container or scrolls inside its own box,
    and the page itself never scrolls sideways, on a wide screen and a narrow one."""
    _, report = flagged
    probe = _probe(tmp_path, report, width)
    assert probe["tables"] >= 8 and probe["unboxed"] == 0, probe
    assert probe["overflowing"] == [] and probe["page_overflow"] <= 0, probe
