"""The paper's claims, checked against a finished ``recipes/sweep_findings_sst2.toml`` sweep (docs/findings.md).

Reads the sweep's ``summary.csv`` (one row per point: mean, sample std and n of the dev metric over the seeds) and
prints a Markdown table with one row per claim: the two sides compared, their means ± std, the difference and a
verdict. The verdict rule, stated once:

* the noise of a difference is its standard error, ``se = sqrt(std_a² / n_a + std_b² / n_b)``;
* "A ≥ B" **reproduces** when ``mean_a - mean_b > se``, is **reversed** when ``mean_a - mean_b < -se``, and is
  **not resolved at n seeds** otherwise;
* "A ≳ B" (a small budget is as good as full HSK: comparable or better) **reproduces** when
  ``mean_a >= mean_b - max(se, 0.005)`` (half a point, the tolerance the paper reads as "comparable").

Usage:
    python benchmarks/findings_claims.py outputs/sweep_findings_sst2
    python benchmarks/findings_claims.py outputs/sweep_findings_sst2 --json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

#: (claim, point A, relation, point B): point names as the findings sweep names them.
CLAIMS = (
    ("HSK helps: the smallest budget (0.2 %) beats prediction-only distillation", "1l_5t_0.1h", ">=", "no_hsk"),
    ("HSK helps: 0.4 % beats prediction-only distillation", "1l_10t_0.1h", ">=", "no_hsk"),
    ("full HSK beats prediction-only distillation", "full_hsk", ">=", "no_hsk"),
    ("~0.4 % of HSK is as good as full HSK (comparable or better)", "1l_10t_0.1h", "~", "full_hsk"),
    ("~3 % of HSK is as good as full HSK (comparable or better)", "2l_20t_0.2h", "~", "full_hsk"),
    ("marginal utility: 0.4 % beats 0.2 %", "1l_10t_0.1h", ">=", "1l_5t_0.1h"),
    ("marginal utility: 3.1 % beats 0.4 %", "2l_20t_0.2h", ">=", "1l_10t_0.1h"),
    ("marginal utility: 15.6 % beats 3.1 %", "4l_20t_0.5h", ">=", "2l_20t_0.2h"),
    ("length: attention w/o [SEP] >= attention", "1l_10t_0.1h", ">=", "att"),
    ("length: attention >= left-first", "att", ">=", "left"),
    ("width: Mag Mask >= uniform", "1l_10t_0.1h", ">=", "uniform"),
    ("width: uniform >= random", "uniform", ">=", "rand"),
    ("width: Mag Mask >= random", "1l_10t_0.1h", ">=", "rand"),
    ("depth: t_top5 >= t_top6 (the paper's t_top10 >= t_top12)", "t_top5", ">=", "1l_10t_0.1h"),
    ("prediction-only distillation leaves the untrained level", "no_hsk", ">=", "untrained"),
)
SAME = 0.005  # "comparable": half a point of the dev metric


def read_summary(sweep_dir: Path) -> dict[str, dict[str, float | int | str | None]]:
    """Point name → series, mean, std (0 for one run), n, min, max, hsk_fraction from ``summary.csv``."""
    rows = {}
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
            }
    return rows


def points_table(rows: dict[str, dict]) -> str:
    """Every point of the sweep as a Markdown table: HSK share, mean ± std, range and n."""
    lines = ["| point | block | HSK | dev metric, mean ± std | min – max | n |", "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['series']} | {100 * row['hsk_fraction']:.3g} % | {row['mean']:.4f} ± {row['std']:.4f} "
            f"| {row['min']:.4f} – {row['max']:.4f} | {row['n']} |"
        )
    return "\n".join(lines)


def verdict(a: dict, b: dict, relation: str) -> tuple[float, float, str]:
    """The difference ``a - b``, its standard error and the verdict under the rule of the module docstring."""
    difference = a["mean"] - b["mean"]
    se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    if relation == "~":
        return difference, se, "reproduces" if difference >= -max(se, SAME) else "does not reproduce"
    if difference > se:
        return difference, se, "reproduces"
    if difference < -se:
        return difference, se, "reversed"
    return difference, se, f"not resolved at n={min(a['n'], b['n'])}"


def claims_table(rows: dict[str, dict]) -> list[dict]:
    """One dict per claim whose two points are both in the sweep's summary."""
    table = []
    for claim, left, relation, right in CLAIMS:
        if left not in rows or right not in rows:
            continue
        difference, se, result = verdict(rows[left], rows[right], relation)
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
                "n": min(rows[left]["n"], rows[right]["n"]),
                "difference": difference,
                "se": se,
                "verdict": result,
            }
        )
    return table


def markdown(table: list[dict]) -> str:
    lines = ["| claim | A | B | A − B (± se) | verdict |", "|---|---|---|---|---|"]
    for row in table:
        lines.append(
            f"| {row['claim']} | {row['a']} {row['a_mean']:.3f} ± {row['a_std']:.3f} "
            f"| {row['b']} {row['b_mean']:.3f} ± {row['b_std']:.3f} "
            f"| {100 * row['difference']:+.1f} (± {100 * row['se']:.1f}) points | {row['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a finished (or partly finished) findings sweep")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if not (args.sweep_dir / "summary.csv").is_file():
        print(f"Error: {args.sweep_dir / 'summary.csv'} not found: run the findings sweep first", file=sys.stderr)
        return 2
    rows = read_summary(args.sweep_dir)
    table = claims_table(rows)
    if args.json:
        print(json.dumps({"points": rows, "claims": table}, indent=2))
    else:
        print(points_table(rows) + "\n\n" + markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
