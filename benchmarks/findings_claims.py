"""The paper's claims, tested on a finished findings sweep (docs/findings.md is written from this script's output).

Reads the sweep's ``results.csv`` (one row per run: point, seed, dev metric) when it is there, else its
``summary.csv`` (mean, sample std and n per point: Welch's test needs nothing more), and prints two Markdown
tables: the points (mean ± std over the seeds) and one row per claim. The statistics come from
``mudkd.core.stats``; the rule, stated once:

* every difference ``A − B`` comes with its 95 % confidence interval: paired over the seeds when both points ran
  the same seeds and the per-seed values are known (``results.csv``), else Welch's (Welch–Satterthwaite df);
* "A beats B" **reproduces** only when A − B > 0 at a Holm-adjusted two-sided p < 0.05, the adjustment taken over
  every test of the report; it is **reversed** when A − B < 0 at that level;
* "A is as good as B" is **equivalent within ±m** only when TOST at the margin ``m`` (:data:`MARGIN`, our choice:
  the paper states none) rejects at a Holm-adjusted p < 0.05; it **reproduces** when A is better at that level;
* anything else is **not resolved (n = …, CI […])**: the data cannot tell.

Usage:
    python benchmarks/findings_claims.py outputs/sweep_findings_sst2
    python benchmarks/findings_claims.py outputs/sweep_findings_sst2 --json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from mudkd.core import stats

#: (claim, point A, relation, point B): ">" A beats B, "~" A is as good as B; point names as the sweeps name them.
CLAIMS = (
    ("HSK helps: the smallest budget (0.2 %) beats prediction-only distillation", "1l_5t_0.1h", ">", "no_hsk"),
    ("HSK helps: 0.4 % beats prediction-only distillation", "1l_10t_0.1h", ">", "no_hsk"),
    ("full HSK beats prediction-only distillation", "full_hsk", ">", "no_hsk"),
    ("~0.4 % of HSK is as good as full HSK", "1l_10t_0.1h", "~", "full_hsk"),
    ("~3 % of HSK is as good as full HSK", "2l_20t_0.2h", "~", "full_hsk"),
    ("marginal utility: 0.4 % beats 0.2 %", "1l_10t_0.1h", ">", "1l_5t_0.1h"),
    ("marginal utility: 3.1 % beats 0.4 %", "2l_20t_0.2h", ">", "1l_10t_0.1h"),
    ("marginal utility: 15.6 % beats 3.1 %", "4l_20t_0.5h", ">", "2l_20t_0.2h"),
    ("length: attention w/o [SEP] beats attention", "1l_10t_0.1h", ">", "att"),
    ("length: attention beats left-first", "att", ">", "left"),
    ("width: Mag Mask beats uniform", "1l_10t_0.1h", ">", "uniform"),
    ("width: uniform beats random", "uniform", ">", "rand"),
    ("width: Mag Mask beats random", "1l_10t_0.1h", ">", "rand"),
    ("depth: t_top5 beats t_top6 (the paper's t_top10 vs t_top12)", "t_top5", ">", "1l_10t_0.1h"),
    ("prediction-only distillation leaves the untrained level", "no_hsk", ">", "untrained"),
)

#: The equivalence margin of "as good as": one point of the dev metric. The paper gives no margin; one point is
#: the smallest difference we would act on at this scale, fixed before looking at the new data.
MARGIN = 0.01


def read_summary(sweep_dir: Path) -> dict[str, dict]:
    """Point name → series, mean, std (0 for one run), n, min, max, hsk_fraction, and the per-seed values when
    ``results.csv`` is beside ``summary.csv`` (``values``: seed → metric)."""
    rows: dict[str, dict] = {}
    with (sweep_dir / "summary.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row["mean"]:
                continue
            rows[row["point"]] = {
                "series": row["series"],
                "mean": float(row["mean"]),
                "std": float(row["std"]) if row["std"] else 0.0,
                "n": int(row["n"]),
                "min": float(row["min"]),
                "max": float(row["max"]),
                "hsk_fraction": float(row["hsk_fraction"] or 0.0),
                "kind": row.get("kind", ""),
            }
    per_run = sweep_dir / "results.csv"
    if per_run.is_file():
        with per_run.open(encoding="utf-8") as handle:
            for run in csv.DictReader(handle):
                if run["point"] in rows and run.get("dev_metric"):
                    rows[run["point"]].setdefault("values", {})[run.get("seed") or ""] = float(run["dev_metric"])
    return rows


def difference(a: dict, b: dict) -> stats.Difference:
    """``A − B``: paired when both sides list the same two or more seeds, else Welch's from mean, std and n."""
    values_a, values_b = a.get("values") or {}, b.get("values") or {}
    if len(values_a) >= 2 and set(values_a) == set(values_b) and "" not in values_a:
        seeds = sorted(values_a)
        return stats.paired([values_a[s] for s in seeds], [values_b[s] for s in seeds])
    return stats.welch(a["mean"], a["std"], a["n"], b["mean"], b["std"], b["n"])


def claims_table(rows: dict[str, dict], margin: float = MARGIN) -> list[dict]:
    """One dict per claim whose two points are in the sweep, with its test, Holm-adjusted p and verdict."""
    tested = []
    for claim, left, relation, right in CLAIMS:
        if left in rows and right in rows:
            d = difference(rows[left], rows[right])
            tested.append((claim, left, relation, right, d, stats.tost(d, margin) if relation == "~" else None))
    # the family: every difference test, and every equivalence test, of the report
    family = [d.p for *_, d, _ in tested] + [e.p for *_, e in tested if e is not None]
    adjusted = stats.holm(family)
    adjusted_tost = iter(adjusted[len(tested) :])
    table = []
    for (claim, left, relation, right, d, equivalence), p in zip(tested, adjusted, strict=False):
        p_tost = next(adjusted_tost) if equivalence is not None else None
        table.append(
            {
                "claim": claim,
                "a": left,
                "b": right,
                "relation": relation,
                "a_mean": rows[left]["mean"],
                "a_std": rows[left]["std"],
                "b_mean": rows[right]["mean"],
                "b_std": rows[right]["std"],
                "n": d.n,
                "test": d.test,
                "difference": d.difference,
                "low": d.low,
                "high": d.high,
                "p": d.p,
                "p_holm": p,
                "tost_p": None if equivalence is None else equivalence.p,
                "tost_p_holm": p_tost,
                "margin": margin if equivalence is not None else None,
                "verdict": stats.verdict(d, p, equivalence=equivalence, adjusted_equivalence_p=p_tost),
            }
        )
    return table


def points_table(rows: dict[str, dict]) -> str:
    """Every point of the sweep as a Markdown table: HSK share, mean ± std, range and n."""
    lines = ["| point | block | HSK | dev metric, mean ± std | min – max | n |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['series']} | {100 * row['hsk_fraction']:.3g} % | {row['mean']:.4f} ± {row['std']:.4f} "
            f"| {row['min']:.4f} – {row['max']:.4f} | {row['n']} |"
        )
    return "\n".join(lines)


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def markdown(table: list[dict]) -> str:
    """The claims as a Markdown table (differences and intervals in points of the metric, × 100)."""
    lines = [
        "| claim | A | B | A − B, 95 % CI (points) | p (Holm) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        p = f"{_p(row['p'])} ({_p(row['p_holm'])})"
        if row["tost_p"] is not None:
            p += f"; TOST ±{100 * row['margin']:g}: {_p(row['tost_p'])} ({_p(row['tost_p_holm'])})"
        lines.append(
            f"| {row['claim']} | {row['a']} {row['a_mean']:.3f} | {row['b']} {row['b_mean']:.3f} "
            f"| {stats.points(row['difference'])} [{stats.points(row['low'])}, {stats.points(row['high'])}] "
            f"| {p} | {row['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a finished (or partly finished) findings sweep")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--margin", type=float, default=100 * MARGIN, help="equivalence margin, points (default 1)")
    args = parser.parse_args(argv)
    if not (args.sweep_dir / "summary.csv").is_file():
        print(f"Error: {args.sweep_dir / 'summary.csv'} not found: run the findings sweep first", file=sys.stderr)
        return 2
    rows = read_summary(args.sweep_dir)
    table = claims_table(rows, args.margin / 100)
    if args.json:
        print(json.dumps({"points": rows, "claims": table, "margin": args.margin / 100}, indent=2))
    else:
        print(points_table(rows) + "\n\n" + markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
