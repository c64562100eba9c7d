"""The result tables of README.md and docs/FINDINGS.md, made from committed result files, never typed.

    python docs/tables.py           # rewrite every marked table from its result file
    python docs/tables.py --check   # exit 1 if a table differs from its result file (the tests run this)

A table lives between `<!-- table: NAME -->` and `<!-- /table -->`. Its numbers come from a study
summary (`docs/findings/GRID/summary.json`, written by `spoken-digits report STUDY --out ...`) or
from `benchmarks/results.json`, and every table says which command and machine produced them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", ROOT / "docs" / "FINDINGS.md")
BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")

OFFICIAL_ROWS = {  # cell of `study presets` -> (the command it stands for, what it is)
    "seed preset": ("--preset seed", "`seed_lstm` on raw mel power, no standardisation"),
    "default, no silence trim": ("--trim-db 0", "`seed_lstm`, dB + standardised, no silence trim"),
    "default": ("", "`seed_lstm`, the default preset (dB + standardised + silence trim)"),
    "default, whole clips": ("--duration 0", "the same on whole clips (padding masked)"),
    "lstm": ("--model lstm", "2-layer LSTM(128)"),
    "gru": ("--model gru", "2-layer GRU(128)"),
    "bilstm": ("--model bilstm", "BiLSTM(128), masked mean"),
    "cnn": ("--model cnn", "3 conv blocks over (time, mel)"),
    "crnn": ("--model crnn", "conv encoder + BiGRU(128)"),
}


def summary(grid: str) -> dict[str, Any]:
    """A study summary committed beside its report."""
    return json.loads((ROOT / "docs" / "findings" / grid / "summary.json").read_text())


def cells(grid: str) -> dict[str, dict[str, Any]]:
    return {row["cell"].split("=", 1)[-1]: row for row in summary(grid)["cells"]}


def machine_line(data: dict[str, Any], command: str) -> str:
    """Which command and machine produced a table: the same seed repeats exactly only there."""
    from spoken_digits.studyreport import describe_machine

    where = "; ".join(describe_machine(m) for m in data.get("machines", [])) or "not recorded"
    return f"*From `{command}` ({', '.join(map(str, data['grid']['seeds']))} as seeds), measured on: {where}.*"


def _accuracy(row: dict[str, Any]) -> str:
    return f"{row['mean']:.3f} ± {row['sd']:.3f}"


def _epochs(row: dict[str, Any]) -> str:
    low, high = row["epochs_run"]
    return str(low) if low == high else f"{low}-{high}"


def presets_official() -> str:
    rows = cells("presets")
    lines = ["| command | model | test accuracy (mean ± sd) | epochs run |", "|---|---|---|---|"]
    for cell, (options, what) in OFFICIAL_ROWS.items():
        command = f"`spoken-digits train {options} --seed S`".replace("  ", " ")
        lines.append(f"| {command} | {what} | {_accuracy(rows[cell])} | {_epochs(rows[cell])} |")
    return "\n".join([*lines, "", machine_line(summary("presets"), "spoken-digits study presets --workers 2")])


def presets_loso() -> str:
    rows = cells("presets-loso")
    head = "| command | test accuracy (mean of folds, mean ± sd) | " + " | ".join(SPEAKERS) + " |"
    lines = [head, "|---|---|" + "---|" * len(SPEAKERS)]
    for name in ("seed", "default", "robust"):
        row = rows[name]
        options = "" if name == "default" else f"--preset {name} "
        speakers = " | ".join(f"{row['per_speaker'][s]:.3f}" for s in SPEAKERS)
        lines.append(f"| `spoken-digits train {options}--split loso --seed S` | {_accuracy(row)} | {speakers} |")
    command = "spoken-digits study presets-loso --workers 2"
    lines += ["", robust_seeds(), "", machine_line(summary("presets-loso"), command)]
    return "\n".join(lines)


def robust_seeds() -> str:
    """Each seed of the robust preset on loso, and its weakest fold."""
    runs = cells("presets-loso")["robust"]["runs"]
    seeds = ", ".join(f"seed {r['seed']} {r['test_accuracy']:.3f}" for r in runs)
    worst = min(((s, a, r["seed"]) for r in runs for s, a in r["folds"].items()), key=lambda t: t[1])
    return f"Robust preset by seed: {seeds}. Its lowest fold in any seed: {worst[0]} {worst[1]:.3f} (seed {worst[2]})."


def ablation() -> str:
    data = summary("ablation")
    reference = next((row["mean"] for row in data["cells"] if row["label"] == "robust, one model"), None)
    lines = ["| variant (one model unless noted) | loso mean | against one robust model | worst fold |"]
    lines.append("|---|---|---|---|")
    for row in data["cells"]:
        folds = {s: a for r in row["runs"] for s, a in r["folds"].items()}
        worst = min(folds, key=folds.__getitem__)
        delta = (
            ""
            if reference is None or row["label"] == "robust, one model"
            else f"{100 * (row['mean'] - reference):+.1f} points"
        )
        lines.append(f"| {row['label']} | {row['mean']:.3f} | {delta} | {worst} {folds[worst]:.3f} |")
    return "\n".join([*lines, "", machine_line(data, "spoken-digits study ablation")])


def benchmarks() -> str:
    sys.path.insert(0, str(ROOT))
    from benchmarks.__main__ import table
    from benchmarks.common import Row

    data = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    rows = [Row(**{k: v for k, v in r.items() if k != "ratio"}) for r in data["rows"]]
    return table(rows) + f"\n\n*From `python -m benchmarks`, measured on {data['machine']}.*"


def robustness() -> str:
    """The default model under noise, reverberation, band and level (`spoken-digits robustness`)."""
    data = json.loads((ROOT / "docs" / "findings" / "robustness" / "robustness.json").read_text())
    acc = {c["condition"]: c["accuracy"] for c in data["conditions"]}
    lines = [
        "| noise (0.25 s of it before and after the word) | 20 dB | 10 dB | 5 dB | 0 dB |",
        "|---|---|---|---|---|",
    ]
    for kind in ("white", "pink", "babble"):
        lines.append(f"| {kind} | " + " | ".join(f"{acc[f'{kind}-{snr}db']:.3f}" for snr in (20, 10, 5, 0)) + " |")
    others = {
        "clean": "clean",
        "reverb-0.3s": "reverberation, T60 0.3 s",
        "reverb-0.6s": "reverberation, T60 0.6 s",
        "reverb-0.9s": "reverberation, T60 0.9 s",
        "telephone": "telephone band (300-3400 Hz)",
        "level-30db": "30 dB quieter",
        "pad-3s": "the word anywhere in 3 s",
        "window-1s": "the word anywhere in a 1 s window",
    }
    lines += ["", "| condition | accuracy |", "|---|---|"]
    lines += [f"| {label} | {acc[name]:.3f} |" for name, label in others.items()]
    from spoken_digits.studyreport import describe_machine

    model = Path(data["model"]).parent.name
    lines += [
        "",
        f"*From `spoken-digits robustness MODEL --seed {data['seed']}` on all {data['n_clips']} {data['split']} "
        f"test clips, MODEL being the default preset's seed-0 run of `study presets` ({model}); measured on: "
        f"{describe_machine(data.get('machine'))}.*",
    ]
    return "\n".join(lines)


def report_tables(grid: str) -> list[list[dict[str, str]]]:
    """The tables of a committed study report (`docs/findings/GRID/report.md`), as rows of {column: cell}."""
    tables, current = [], []
    for line in [*(ROOT / "docs" / "findings" / grid / "report.md").read_text().splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            head, rows = current[0], current[2:]
            tables.append([dict(zip(head, row, strict=True)) for row in rows])
            current = []
    return tables


def _from_report(grid: str) -> str:
    return (
        f"*From `spoken-digits study {grid} --workers 2`, as its report `docs/findings/{grid}/report.md` gives it; "
        "measured on this project's 2-core CPU, one torch thread per run, torch 2.13.0+cpu.*"
    )


def report_results(grid: str, columns: dict[str, str]) -> str:
    """A study's results table, renamed columns only; timings left out (they were taken on a busy machine)."""
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in report_tables(grid)[0]]
    return "\n".join([*lines, "", _from_report(grid)])


def report_pivot(grid: str, rows: str, columns: str, title: str) -> str:
    """A two-axis study as rows x columns of mean ± sd."""
    cells = report_tables(grid)[0]
    row_levels = list(dict.fromkeys(c[rows] for c in cells))
    col_levels = list(dict.fromkeys(c[columns] for c in cells))
    value = {(c[rows], c[columns]): c["accuracy (mean ± sd)"] for c in cells}
    lines = [f"| {title} | " + " | ".join(f"{columns} {level}" for level in col_levels) + " |"]
    lines.append("|---|" + "---|" * len(col_levels))
    lines += [f"| {r} | " + " | ".join(value[(r, c)] for c in col_levels) + " |" for r in row_levels]
    return "\n".join([*lines, "", _from_report(grid)])


def report_speakers() -> str:
    """`study speakers`: loso mean and each held-out speaker's accuracy per model."""
    results, per_speaker = report_tables("speakers")[0], report_tables("speakers")[1]
    means = {r["model"]: r["accuracy (mean ± sd)"].split(" ")[0] for r in results}
    lines = ["| model | loso mean | " + " | ".join(SPEAKERS) + " |", "|---|---|" + "---|" * len(SPEAKERS)]
    lines += [
        f"| `{r['cell']}` | {means[r['cell']]} | " + " | ".join(r[s] for s in SPEAKERS) + " |" for r in per_speaker
    ]
    return "\n".join([*lines, "", _from_report("speakers")])


def ablation_before_fixes() -> str:
    """`study ablation` as run at commit f7a2ce9, before issue 16's BatchNorm and length-rule fixes."""
    results, per_speaker = report_tables("ablation-f7a2ce9")[0], report_tables("ablation-f7a2ce9")[1]
    worst = {r["cell"]: min(SPEAKERS, key=lambda s: float(r[s])) for r in per_speaker}
    lines = ["| variant (one model unless noted) | loso mean | worst fold |", "|---|---|---|"]
    for r in results:
        fold = worst[r["variant"]]
        row = next(p for p in per_speaker if p["cell"] == r["variant"])
        lines.append(f"| {r['variant']} | {r['accuracy (mean ± sd)'].split(' ')[0]} | {fold} {row[fold]} |")
    note = (
        "*From `spoken-digits study ablation --workers 2` at commit f7a2ce9, as its report "
        "`docs/findings/ablation-f7a2ce9/report.md` gives it; measured on this project's 2-core CPU, one torch "
        "thread per run, torch 2.13.0+cpu, before BatchNorm counted only valid frames.*"
    )
    return "\n".join([*lines, "", note])


ACCURACY = {"accuracy (mean ± sd)": "test accuracy (mean ± sd)", "95% CI": "95% CI"}

TABLES: dict[str, Callable[[], str]] = {
    "report-layout": lambda: report_results("layout", {"features": "features", "layout": "layout", **ACCURACY}),
    "report-models": lambda: report_results("models", {"model": "model", **ACCURACY, "parameters": "parameters"}),
    "report-speakers": report_speakers,
    "report-features": lambda: report_results("features", {"scale": "scale", "length": "clip length", **ACCURACY}),
    "report-optim": lambda: report_pivot("optim", "features", "lr", "features"),
    "report-padding": lambda: report_pivot("padding", "scale", "pad", "scale"),
    "ablation-f7a2ce9": ablation_before_fixes,
    "robustness": robustness,
    "presets-official": presets_official,
    "presets-loso": presets_loso,
    "ablation": ablation,
    "benchmarks": benchmarks,
}


def render(text: str) -> str:
    """`text` with every marked table replaced by its rendering; an unknown table name is an error."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r}; known: {', '.join(TABLES)}")
        return f"{match[1]}{TABLES[name]()}\n{match[4]}"

    return BLOCK.sub(fill, text)


def main(argv: list[str]) -> int:
    stale = []
    for path in DOCS:
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(path.name)
            if "--check" not in argv:
                path.write_text(new)
    if "--check" in argv and stale:
        print(f"tables out of date with their result files in: {', '.join(stale)}; run python docs/tables.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
