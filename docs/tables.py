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
    # cells measured when the clean preset was called "default" (before the speech detector)
    "default, no silence trim": ("--preset clean --trim-db 0", "`seed_lstm`, dB + standardised, no silence trim"),
    "default": ("--preset clean", "`seed_lstm`, the clean preset (dB + standardised + silence trim)"),
    "default, whole clips": ("--preset clean --duration 0", "the same on whole clips (padding masked)"),
    "lstm": ("--preset clean --model lstm", "2-layer LSTM(128)"),
    "gru": ("--preset clean --model gru", "2-layer GRU(128)"),
    "bilstm": ("--preset clean --model bilstm", "BiLSTM(128), masked mean"),
    "cnn": ("--preset clean --model cnn", "3 conv blocks over (time, mel)"),
    "crnn": ("--preset clean --model crnn", "conv encoder + BiGRU(128)"),
}
LOSO_ROWS = ("seed", "clean", "robust")  # presets-loso cells, each named for its preset
LEGACY_CELLS = {"clean": "default"}  # the clean preset was the default when the committed summary was written


def summary(grid: str) -> dict[str, Any]:
    """A study summary committed beside its report."""
    return json.loads((ROOT / "docs" / "findings" / grid / "summary.json").read_text())


def cells(grid: str) -> dict[str, dict[str, Any]]:
    return {row["cell"].split("=", 1)[-1]: row for row in summary(grid)["cells"]}


def machine_line(data: dict[str, Any], command: str) -> str:
    """Which command and machine produced a table: the same seed repeats exactly only there."""
    from spoken_digits.training.studyreport import describe_machine

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
    for preset in LOSO_ROWS:
        row = rows[preset] if preset in rows else rows[LEGACY_CELLS[preset]]
        options = f"--preset {preset} "
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


ROBUSTNESS = ROOT / "docs" / "findings" / "robustness"
TARGETS = {  # issue 12's targets, official split, mean of 3 seeds
    "clean": 0.99, "white-20db": 0.97, "pink-20db": 0.97, "babble-20db": 0.97, "white-10db": 0.93,
    "pink-10db": 0.93, "babble-10db": 0.93, "white-5db": 0.85, "pink-5db": 0.85, "babble-5db": 0.85,
    "white-0db": 0.65, "pink-0db": 0.65, "babble-0db": 0.65, "reverb-0.6s": 0.97, "level-30db": 0.98,
    "pad-3s": 0.98, "window-1s": 0.98,
}  # fmt: skip
CONDITIONS = {
    "clean": "clean",
    **{f"{k}-{snr}db": f"{k} noise, {snr} dB SNR" for k in ("white", "pink", "babble") for snr in (20, 10, 5, 0)},
    "reverb-0.3s": "reverberation, T60 0.3 s",
    "reverb-0.6s": "reverberation, T60 0.6 s",
    "reverb-0.9s": "reverberation, T60 0.9 s",
    "telephone": "telephone band (300-3400 Hz)",
    "level-30db": "30 dB quieter",
    "pad-3s": "the word anywhere in 3 s",
    "window-1s": "the word anywhere in a 1 s window",
}


def _robustness_file(folder: str) -> dict[str, Any]:
    return json.loads((ROBUSTNESS / folder / "robustness.json").read_text())


def robustness() -> str:
    """The default model (3 seeds) beside the clean preset and pocketsphinx under every condition."""
    from spoken_digits.training.studyreport import describe_machine

    seeds = sorted(p.name for p in ROBUSTNESS.glob("default-s*"))
    runs = [_robustness_file(name) for name in seeds]
    clean = _robustness_file("clean")
    peer = json.loads((ROBUSTNESS / "peer" / "peer.json").read_text())
    by = lambda data: {c["condition"]: c for c in data["conditions"]}  # noqa: E731
    ours = [by(r) for r in runs]
    before, sphinx = by(clean), by(peer)
    lines = [
        "| condition | scratch preset, mean of 3 seeds (lowest) | refused (of 300) | target | clean preset "
        "(before) | pocketsphinx |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in CONDITIONS.items():
        accuracies = [r[name]["accuracy"] for r in ours]
        mean = sum(accuracies) / len(accuracies)
        target = TARGETS.get(name)
        mark = "" if target is None else (f">= {target:.2f}" + ("" if mean >= target else " (missed)"))
        refused = "/".join(str(r[name]["refused"]) for r in ours)
        ps = sphinx[name]["pocketsphinx"]["accuracy"]
        lines.append(
            f"| {label} | {mean:.3f} ({min(accuracies):.3f}) | {refused} | {mark} | {before[name]['accuracy']:.3f} "
            f"| {ps:.3f} |"
        )
    lines += [
        "",
        f"*From `spoken-digits robustness MODEL --seed {runs[0]['seed']}` on all {runs[0]['n_clips']} "
        f"{runs[0]['split']} test clips, MODEL being `spoken-digits train --preset scratch --seed S` for S = "
        f"{', '.join(s.split('-s')[-1] for s in seeds)} ({', '.join(seeds)}), and the clean preset's seed-0 run "
        f"of `study presets` (clean); pocketsphinx {peer['pocketsphinx']['version']} with a digit grammar on the "
        f"same corrupted clips, from `python -m benchmarks.peer` (peer); measured on: "
        f"{describe_machine(runs[0].get('machine'))}.*",
    ]
    return "\n".join(lines)


def robustness_loso() -> str:
    """The scratch preset on voices it never heard: each loso fold's model on its held-out speaker."""
    folds = {p.name: _robustness_file(f"loso-s0/{p.name}") for p in sorted((ROBUSTNESS / "loso-s0").iterdir())}
    acc = {s: {c["condition"]: c["accuracy"] for c in d["conditions"]} for s, d in folds.items()}
    lines = ["| condition | mean of the six folds | " + " | ".join(acc) + " |", "|---|---|" + "---|" * len(acc)]
    for name in ("clean", "babble-10db"):
        values = [a[name] for a in acc.values()]
        cells = " | ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {CONDITIONS[name]} | {sum(values) / len(values):.3f} | {cells} |")
    first = next(iter(folds.values()))
    return "\n".join(
        [
            *lines,
            "",
            "*From `spoken-digits train --preset scratch --split loso` (seed 0), then `spoken-digits robustness "
            "runs/.../folds/SPEAKER/model.pt --split loso --speaker SPEAKER --conditions clean babble-10db` for each "
            f"speaker (all 500 of their clips); measured on: {_describe(first)}.*",
        ]
    )


ENCODER = ROOT / "docs" / "findings" / "encoder"
ENCODER_TARGETS = {"clean": 0.995, "babble-10db": 0.95, "babble2-10db": 0.95, "babble-0db": 0.70,
                   "babble2-0db": 0.70, "reverb-0.6s": 0.97, "reverb2-0.6s": 0.97}  # fmt: skip
SECOND = {  # issue 22's second generators, each placed after its twin
    **{f"babble2-{snr}db": f"synthetic-talker babble (second generator), {snr} dB SNR" for snr in (20, 10, 5, 0)},
    **{f"reverb2-{t}s": f"reverberation, second room model, T60 {t} s" for t in ("0.3", "0.6", "0.9")},
}


def encoder_robustness() -> str:
    """The scratch preset and the default (speech encoder), seed 0, under every condition of both generators."""
    runs = {name: json.loads((ENCODER / "robustness" / name / "robustness.json").read_text())
            for name in ("scratch-s0", "encoder-s0")}  # fmt: skip
    by = {name: {c["condition"]: c for c in data["conditions"]} for name, data in runs.items()}
    order = [c["condition"] for c in runs["encoder-s0"]["conditions"]]
    labels = {**CONDITIONS, **SECOND}
    lines = [
        "| condition | from scratch (`--preset scratch`) | speech encoder (`--preset default`) | issue 22 target |",
        "|---|---|---|---|",
    ]
    for name in order:
        a, b = by["scratch-s0"][name]["accuracy"], by["encoder-s0"][name]["accuracy"]
        target = ENCODER_TARGETS.get(name)
        mark = "" if target is None else f">= {target:.3f}" + ("" if b >= target else " (missed)")
        lines.append(f"| {labels.get(name, name)} | {a:.3f} | {b:.3f} | {mark} |")
    first = runs["encoder-s0"]
    lines += [
        "",
        f"*From `spoken-digits robustness MODEL --seed {first['seed']}` on all {first['n_clips']} official test "
        "clips, MODEL being `spoken-digits train --seed 0` with `--preset scratch` or `--preset default` "
        f"(docs/findings/encoder/robustness/); measured on: {_describe(first)}.*",
    ]
    return "\n".join(lines)


def encoder_loso() -> str:
    """Each leave-one-speaker-out fold of the default (speech encoder) per seed, beside the scratch preset's fold."""
    scratch = {p.name: _robustness_file(f"loso-s0/{p.name}") for p in sorted((ROBUSTNESS / "loso-s0").iterdir())}
    before = {s: next(c["accuracy"] for c in d["conditions"] if c["condition"] == "clean") for s, d in scratch.items()}
    seeds = sorted(ENCODER.glob("loso-s*"))
    runs = {p.name[len("loso-") :]: {m.parent.name: json.loads(m.read_text()) for m in p.glob("*/metrics.json")}
            for p in seeds}  # fmt: skip
    head = " | ".join(f"encoder {s}" for s in runs)
    lines = [
        f"| held-out speaker | from scratch (s0) | {head} | encoder, mean |",
        "|---|---|" + "---|" * (len(runs) + 1),
    ]
    means = {}
    for speaker in sorted(before):
        values = [folds[speaker]["test_accuracy"] for folds in runs.values()]
        means[speaker] = sum(values) / len(values)
        cells = " | ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {speaker} | {before[speaker]:.3f} | {cells} | {means[speaker]:.3f} |")
    per_seed = [sum(f[s]["test_accuracy"] for s in before) / len(before) for f in runs.values()]
    cells = " | ".join(f"{v:.3f}" for v in per_seed)
    mean = sum(per_seed) / len(per_seed)
    lines.append(f"| **mean of the folds** | {sum(before.values()) / len(before):.3f} | {cells} | {mean:.3f} |")
    first = next(iter(runs["s0"].values()))
    return "\n".join(
        [
            *lines,
            "",
            "*From `spoken-digits train --split loso --speaker SPEAKER --seed S` (the default preset; "
            "docs/findings/encoder/loso-sS/SPEAKER/metrics.json) and the scratch preset's seed-0 loso folds "
            "(docs/findings/robustness/loso-s0); "
            f"measured on: {_describe(first)}.*",
        ]
    )


def encoder_speed() -> str:
    """One clip, file in -> digit out, warm: the default model (torch and ONNX) against the scratch model."""
    data = json.loads((ENCODER / "speed" / "speed.json").read_text())
    lines = ["| what | reference | reference time | ours | check | target | met |", "|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        met = "yes" if r["met"] else "**no**"
        lines.append(
            f"| {r['what']} | {r['reference']} | {1000 * r['reference_s']:.1f} ms | {1000 * r['ours_s']:.1f} ms "
            f"| {r['check']} | {r['target']} | {met} |"
        )
    command = f"python -m benchmarks.encoder {data['scratch']} {data['default']}"
    return "\n".join([*lines, "", f"*From `{command}`; measured on: {data['machine']}.*"])


def _describe(data: dict[str, Any]) -> str:
    from spoken_digits.training.studyreport import describe_machine

    return describe_machine(data.get("machine"))


STEPS = {  # docs/findings/robustness/steps/NAME.json: one development run each (seed 0), in the order made
    "A": "speech detector + noise (0-30 dB), rooms (30%), context, band, clipping; margins cut at the clip",
    "A-margins": "the same model, the detector's margins heard as silence past the clip's ends",
    "B": "retrained that way; babble twice as often, SNR from -5 dB, rooms 40%",
    "C": "+ silence past the ends for half the training clips, rooms 50%, 0.4 s of decay",
    "D": "C with conv1d 192 x 4 layers (2.3x the compute)",
    "E": "C with 30 epochs, not 20",
    "F": "C with the rooms bug fixed: half the clips in 40 rooms (the scratch preset; seed 0 of the README's table)",
}
STEP_COLUMNS = ("clean", "white-10db", "white-0db", "babble-10db", "babble-5db", "babble-0db", "reverb-0.6s")


def robustness_steps() -> str:
    """What each development step did to the robustness benchmark (seed 0, 300 clips)."""
    head = "| step | " + " | ".join(STEP_COLUMNS) + " |"
    lines = [head, "|---|" + "---|" * len(STEP_COLUMNS)]
    before = {c["condition"]: c["accuracy"] for c in _robustness_file("clean")["conditions"]}
    lines.append("| clean preset (before) | " + " | ".join(f"{before[c]:.3f}" for c in STEP_COLUMNS) + " |")
    machines: dict[str, list[str]] = {}
    for name, what in STEPS.items():
        path = ROBUSTNESS / "steps" / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            machines.setdefault(_describe(data), []).append(name)
            acc = {c["condition"]: c["accuracy"] for c in data["conditions"]}
            lines.append(f"| {name}: {what} | " + " | ".join(f"{acc[c]:.3f}" for c in STEP_COLUMNS) + " |")
    return "\n".join(
        [
            *lines,
            "",
            "*From `spoken-digits robustness MODEL --seed 0` on the 300 official test clips; "
            "each MODEL a seed-0 `train` run of the code at that step (docs/findings/robustness/steps/). In steps "
            "A-E a bug (fixed in F, and tested) put every training clip in one of two simulated rooms, instead of "
            "the stated share in 40 rooms; measured on: "
            + "; ".join(f"{where} ({', '.join(names)})" for where, names in machines.items())
            + ".*",
        ]
    )


STRINGS = ROOT / "docs" / "findings" / "strings" / "strings.json"
STRING_ROWS = {
    "clean-far": "clean, pauses 100-500 ms",
    "clean-near": "clean, pauses 0-100 ms (touching words)",
    **{f"{k}-{snr}db": f"{k} noise, {snr} dB SNR" for k in ("white", "pink", "babble") for snr in (20, 10, 5)},
    "non-speech": "60 s of noise, music-like tones, room tone",
    "backwards-words": "60 s of words played backwards (speech, no digits)",
}


def _who(name: str) -> str:
    return "pocketsphinx" if name == "pocketsphinx" else f"`{Path(name).parent.name}`"


def strings(path: Path = STRINGS) -> str:
    """The connected-digit benchmark: digit error rate and string accuracy per row, every recogniser."""
    from spoken_digits.training.studyreport import describe_machine

    data = json.loads(path.read_text())
    who = [*data["models"], *(["pocketsphinx"] if "pocketsphinx" in data else [])]
    lines = [
        "| strings of 1-10 digits | " + " | ".join(_who(w) for w in who) + " | target |",
        "|---|" + "---|" * (len(who) + 1),
    ]
    for row in data["rows"]:
        cells = []
        for w in who:
            r = row[w]
            cells.append(
                f"{r['false_per_minute']:.1f} digits/min"
                if "false_per_minute" in r
                else f"DER {100 * r['der']:.1f}%, strings {r['string_accuracy']:.2f}"
            )
        target = data["targets"].get(row["condition"])
        goal = f"DER <= {100 * target:.0f}%" if target is not None else ""
        first = row[data["models"][0]]
        if row["condition"] == "non-speech":
            goal = "<= 1 digit/min" + (" (missed)" if first["false_per_minute"] > 1 else "")
        elif target is not None and first["der"] > target:
            goal += " (missed)"
        lines.append(f"| {STRING_ROWS[row['condition']]} ({row['n']}) | {' | '.join(cells)} | {goal} |")
    lines += [
        "",
        "| live listening (clean, pauses 100-500 ms, 20 ms chunks) | DER | strings | delay after each word, "
        "median / 95th percentile | real-time factor, 1 thread |",
        "|---|---|---|---|---|",
    ]
    for name, r in data["streaming"].items():
        lines.append(
            f"| {_who(name)} | {100 * r['der']:.1f}% | {r['string_accuracy']:.2f} | "
            f"{1000 * r['delay_p50_s']:.0f} / {1000 * r['delay_p95_s']:.0f} ms | {r['rtf']:.3f} |"
        )
    singles = ", ".join(f"{_who(n)} {1 - r['der']:.3f}" for n, r in data["single_clips"].items())
    peer = "" if "pocketsphinx" in data else " --no-peer"
    lines += [
        "",
        f"*From `python -m benchmarks.strings {' '.join(data['models'])}{peer}` (seed {data['seed']}, "
        f"{data['strings']} "
        f"strings per row; DER = digit error rate, edits / digits; strings = whole-string accuracy); the 300 "
        f"single test clips through the same path: {singles}; measured on: {describe_machine(data['machine'])}.*",
    ]
    return "\n".join(lines)


EQUIVALENCE = ROOT / "docs" / "findings" / "data" / "equivalence.json"
SCALE = ROOT / "docs" / "findings" / "scale" / "scale.json"


def own_data() -> str:
    """FSDD through three layouts, and the 100,000-clip scale benchmark."""
    from spoken_digits.training.studyreport import describe_machine

    same = json.loads(EQUIVALENCE.read_text())
    lines = ["| FSDD read as | test accuracy (scratch preset, seed 0) | train / test clips |", "|---|---|---|"]
    for name, run in same["runs"].items():
        lines.append(f"| {name} | {run['test_accuracy']:.4f} | {run['n_train']} / {run['n_test']} |")
    lines += [
        "",
        f"*Same clips in the same order: {'yes' if same['same_clips_and_order'] else 'no'}; same split: "
        f"{'yes' if same['same_split'] else 'no'}; largest difference {same['largest_difference']:.4f} (target "
        f"<= 0.005). From `python docs/findings/data/equivalence.py`; measured on: "
        f"{describe_machine(same['machine'])}.*",
    ]
    scale = json.loads(SCALE.read_text())
    ex, tr, n = scale["extraction"], scale["training"], scale["settings"]["clips"]
    workers = scale["settings"]["workers"]
    lines += [
        "",
        f"| {n:,} one-second clips | measured | target |",
        "|---|---|---|",
        f"| front end, 1 worker | {ex['serial_seconds']:.0f} s ({ex['ms_per_clip_serial']:.1f} ms per clip) | |",
        f"| front end, {workers} workers | {ex['parallel_seconds']:.0f} s: {ex['workers_speedup']:.2f}x; "
        f"stores identical: {'yes' if ex['identical_1_vs_n_workers'] else 'no'} | close to {workers}x |",
        f"| second run, from the cache | {ex['reuse_seconds']:.2f} s: {ex['cache_speedup']:.0f}x | >= 20x |",
        f"| `spoken-digits train`, 1 epoch, streamed from the cache | {tr['seconds'] / 60:.1f} min, "
        f"peak RSS {tr['peak_rss_mb']:,.0f} MB | <= 2,048 MB |",
        "",
        f"*From `python -m benchmarks.dataset_scale` (FSDD words placed in one second of quiet noise, in class "
        f"folders; the scratch preset's front end, with the speech detector; {ex['stored_mb']:,.0f} MB cached); "
        f"measured on: {describe_machine(scale['machine'])}.*",
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


NONDIGITS = ROOT / "docs" / "findings" / "nondigits" / "nondigits.json"
NONDIGIT_KINDS = {
    "tts-espeak": "everyday words, espeak-ng voices (voices and words never trained on)",
    "tts-flite": "everyday words, flite voices (`filler-tts-s0`'s filler voices, other words)",
    "tts-festival": "everyday words, festival voice (`filler-tts-s0`'s filler voice, other words)",
    "backwards": "FSDD test words played backwards (a filler kind of `filler-tts-s0`: flatters it)",
    "splices": "FSDD test speakers' splices of two words (a filler kind of `filler-tts-s0`: flatters it)",
}


def nondigits(path: Path = NONDIGITS) -> str:
    """False digits a minute in non-digit speech, then single words through the string path and --single."""
    data = json.loads(path.read_text())
    who = [*data["models"], *(["pocketsphinx"] if "pocketsphinx" in data else [])]
    names = [_who(w) for w in who]
    lines = ["| false digits a minute in | " + " | ".join(names) + " | target |", "|---|" + "---|" * (len(who) + 1)]
    for row in data["false_digits_per_minute"]:
        cells = " | ".join(f"{row[w]:.1f}" for w in who)
        lines.append(f"| {NONDIGIT_KINDS.get(row['kind'], row['kind'])} ({row['minutes']:.1f} min) | {cells} | <= 2 |")
    lines += ["", "| one word per clip | model | string path (`predict`) | `--single` | no digit heard | ECE |"]
    lines.append("|---|---|---|---|---|---|")
    for model, kinds in data["single_words"].items():
        for kind, r in kinds.items():
            where = "FSDD official test (300)" if kind == "fsdd-test" else f"digits said by espeak-ng voices ({r['n']})"
            lines.append(
                f"| {where} | {_who(model)} | {r['string_path']:.3f} | {r['single']:.3f} | {r['none_heard']} "
                f"| {r['ece']:.3f} |"
            )
    from spoken_digits.training.studyreport import describe_machine

    command = "python -m benchmarks.nondigits " + " ".join(data["models"])
    where = describe_machine(data["machine"])
    return "\n".join([*lines, "", f"*From `{command}`, seed {data['seed']}; measured on: {where}.*"])


NONDIGIT_LOSO = {  # folder under docs/findings/nondigits/loso -> what was trained
    "calibrate-val10-best-epoch": "10% of training takes held out; the epoch scoring best on them kept",
    "calibrate-val10": "10% held out; the last epoch kept",
    "default-s0": "**5% held out; the last epoch kept (the default)**",
    "filler-fsdd3-best-epoch": "filler of reversed, spliced, cut training words (--filler 3); best epoch",
    "filler-fsdd3-tts-best-epoch": "the same + synthesised words and digits (--filler-voices); best epoch",
    "filler-tts-best-epoch": "synthesised words and digits only (--filler 0 --filler-voices); best epoch",
    "filler-tts": "synthesised words and digits only; the last epoch kept",
}


def nondigits_loso() -> str:
    """Held-out voices with each calibration and filler choice: accuracy, words answered filler, ECE."""
    base = ROOT / "docs" / "findings"
    lines = ["| trained (seed 0) | george | nicolas | answered filler (george) | epoch kept | ECE (george) |"]
    lines.append("|---|---|---|---|---|---|")
    before = {s: json.loads((base / "encoder" / "loso-s0" / s / "metrics.json").read_text()) for s in SPEAKERS}
    lines.append(
        f"| no slice held out, no filler (the default before) | {before['george']['test_accuracy']:.3f} "
        f"| {before['nicolas']['test_accuracy']:.3f} | - | 10 of 10 | - |"
    )
    for folder, what in NONDIGIT_LOSO.items():
        found = {s: base / "nondigits" / "loso" / folder / s / "metrics.json" for s in ("george", "nicolas")}
        m = {s: json.loads(f.read_text()) for s, f in found.items() if f.is_file()}
        if "george" not in m:
            continue
        g = m["george"]
        filler = sum(row[-1] for row in g["confusion"]) if len(g["confusion"]) > 10 else 0
        nicolas = f"{m['nicolas']['accuracy']:.3f}" if "nicolas" in m else "-"
        lines.append(
            f"| {what} | {g['accuracy']:.3f} | {nicolas} | {filler} of {g['n']} | {g['best_epoch']} of "
            f"{g['epochs_run']} | {g['test_calibration']['ece']:.3f} |"
        )
    folds = {
        s: json.loads((base / "nondigits" / "loso" / "default-s0" / s / "metrics.json").read_text()) for s in SPEAKERS
    }
    eces = {s: m["test_calibration"]["ece"] for s, m in folds.items()}
    worst = max(eces, key=eces.__getitem__)
    lines += [
        "",
        f"The default over all six folds (seed 0): mean accuracy {sum(m['accuracy'] for m in folds.values()) / 6:.3f} "
        f"(before: {sum(before[s]['test_accuracy'] for s in SPEAKERS) / 6:.3f}); ECE {min(eces.values()):.3f} to "
        f"{eces[worst]:.3f} ({worst}).",
    ]
    note = (
        "*From `spoken-digits train --split loso --speaker SPEAKER`, each run's full config beside its fold metrics "
        "(the held-out share and the kept epoch are config fields, not options; configs and fold metrics "
        "in docs/findings/nondigits/loso/ and docs/findings/encoder/loso-s0/); measured on: this project's 2-core "
        "CPU, one torch thread per run, torch 2.13.0+cpu.*"
    )
    return "\n".join([*lines, "", note])


RUNTIME = ROOT / "docs" / "findings" / "runtime" / "runtime.json"


def runtime(path: Path = RUNTIME) -> str:
    """The three ways to run it and pocketsphinx: cold one file, cold many files, peak memory, same answers."""
    data = json.loads(path.read_text())
    n, lean = data["files"], "lean runtime (packaged ONNX)"
    lines = [
        f"| how | one file, cold | peak RSS | {n} files, cold | same answers as the lean runtime |",
        "|---|---|---|---|---|",
    ]
    for name, one in data["one_file"].items():
        many = data["all_files"][name]
        same = data["same_answers_as_lean"].get(name)
        lines.append(
            f"| {name} | {one['seconds']:.2f} s | {one['peak_mb']:.0f} MB | {many['seconds']:.2f} s | "
            f"{'' if same is None else f'{same}/{n}'} |"
        )
    warm, sizes = data["warm"], data["install_mb"]
    ratio = data["all_files"]["pocketsphinx"]["seconds"] / data["all_files"][lean]["seconds"]
    notes = [
        "",
        f"Warm, one loaded model, per one-word clip: {warm['string_ms']:.1f} ms as `predict` answers (detector, "
        f"cutting, model; the detector alone {warm['detector_ms']:.1f} ms), {warm['single_ms']:.1f} ms as "
        "`--single`. On disk: the lean runtime's install "
        f"{sizes['lean runtime']:.0f} MB ({', '.join(f'{k} {v:.0f}' for k, v in sizes['largest'].items())}); torch "
        f"alone {sizes['torch alone (CPU build)']:.0f} MB. {n} files cold: "
        f"the lean runtime is {ratio:.1f}x pocketsphinx's speed. Accuracy of the lean runtime on these official "
        f"test clips (in the packaged model's training data): {data['accuracy_lean']:.3f}.",
        "",
        f"*From `python -m benchmarks.runtime`, measured on {data['machine']['cpu']}, {data['machine']['cores']} "
        f"cores, torch {data['machine']['torch']} (one run; ratios move by tens of percent between runs here).*",
    ]
    return "\n".join(lines + notes)


def browser(path: Path = RUNTIME.parent / "browser.json") -> str:
    """The in-browser page: same answers, download, load and per-clip time, microphone latency."""
    data = json.loads(path.read_text())
    n, mic, size, clip = data["files"], data["microphone"], data["download"], data["per_clip_ms"]
    latency = mic["median_latency_ms"]
    rows = [
        ("same answers as the Python runtime", f"{data['same_answers']}/{n} official test clips"),
        ("download (model, detector, onnxruntime-web)", f"{size['stored_mb']:.1f} MB, {size['gzip_mb']:.1f} MB gzip"),
        ("cold load (files, wasm, both sessions)", f"{data['cold_load_s']:.2f} s"),
        ("per one-word clip, warm", f"{clip['median']:.0f} ms median, {clip['p90']:.0f} ms p90"),
        (
            "word end to digit shown (fake microphone)",
            "not measured" if latency is None else f"{latency:.0f} ms median over {len(mic['latency_ms'])} words",
        ),
    ]
    lines = ["| what | measured |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    where = data["machine"]
    lines += [
        "",
        f"*From `python -m benchmarks.browser` (onnxruntime-web {data['onnxruntime_web']}, {where['browser']}), "
        f"measured on {where['cpu']}, {where['cores']} cores.*",
    ]
    return "\n".join(lines)


def reproduce(path: Path = RUNTIME.parent / "reproduce.json") -> str:
    """make pretrained run again beside the packaged model."""
    data = json.loads(path.read_text())
    where = data["machine"]
    return "\n".join([
        "| same file (sha256) | validation accuracy, packaged / again | same answers | largest difference of p |",
        "|---|---|---|---|",
        f"| {'yes' if data['same_file'] else 'no'} | {data['val_accuracy']['packaged']:.3f} / "
        f"{data['val_accuracy']['again']:.3f} | {data['same_answers']}/{data['files']} official test clips | "
        f"{data['max_probability_difference']:.1e} |",
        "",
        f"*From `python -m benchmarks.pretrained`, measured on {where['cpu']}, {where['cores']} cores, "
        f"{where['threads']} threads, torch {where['torch']}.*",
    ])


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
    "robustness-steps": robustness_steps,
    "robustness-loso": robustness_loso,
    "encoder-robustness": encoder_robustness,
    "encoder-loso": encoder_loso,
    "presets-official": presets_official,
    "presets-loso": presets_loso,
    "ablation": ablation,
    "benchmarks": benchmarks,
    "strings": strings,
    "encoder-speed": encoder_speed,
    "encoder-strings": lambda: strings(ENCODER / "strings" / "strings.json"),
    "own-data": own_data,
    "nondigits": nondigits,
    "nondigits-loso": nondigits_loso,
    "nondigits-strings": lambda: strings(ROOT / "docs" / "findings" / "nondigits" / "strings" / "strings.json"),
    "runtime": runtime,
    "browser": browser,
    "reproduce": reproduce,
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
