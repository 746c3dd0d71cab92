"""How much of SST-2's dev set the quickstart's teacher was trained on, and the students' share of the teacher on
the rest.

SST-2 and ``rt-snippets`` are both drawn from the same Rotten Tomatoes review snippets (Pang & Lee's sentence
polarity data), so most SST-2 dev sentences are also rt-snippets, and some are among the labelled examples the
quickstart's teacher was fine-tuned on. A teacher that has seen a dev sentence with its label scores higher on
it, and the share of the teacher a student keeps on the whole dev set is then understated.

The script matches every SST-2 dev sentence against rt-snippets (lower-cased, runs of other characters than a-z
and 0-9 collapsed to one space): in the teacher's training slice (the first ``--teacher-train`` snippets of
mudkd's rt-snippets training split, the quickstart's ``max_train_samples``), elsewhere in rt-snippets, or nowhere.
It writes a **clean** SST-2 dev set without the first group into a temporary folder (beside a link to SST-2's
training file, which only names the classes), then scores with ``mudkd evaluate`` the teacher on each group and
every given student (``--students``: model folders, or pipeline folders holding ``final/``) on the whole and the
clean dev set: mean ± std over the students and each one's share of the teacher on the same examples.

Usage::

    python benchmarks/sst2_overlap.py --teacher outputs/quickstart/teacher
    python benchmarks/sst2_overlap.py --teacher outputs/quickstart/teacher --students runs/sst2-d-s*/out --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUPS = ("teacher_train", "rt_elsewhere", "nowhere")


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def split_dev(sst2: Path, teacher_train: int) -> tuple[str, dict[str, list[str]]]:
    """SST-2 dev's header and its rows per group (where in rt-snippets each sentence is)."""
    from mudkd.core.data import load_raw
    from mudkd.recipe.schema import TaskConfig

    splits = load_raw(TaskConfig(name="rt-snippets"))[0]
    train = [normalise(text) for text in splits["train"]["text_a"]]
    seen = set(train[:teacher_train])
    elsewhere = set(train[teacher_train:]) | {normalise(text) for text in splits["dev"]["text_a"]}
    with (sst2 / "dev.tsv").open(encoding="utf-8") as handle:  # GLUE TSV: no quoting, sentence<TAB>label
        header, *rows = handle.read().splitlines()
    groups: dict[str, list[str]] = {name: [] for name in GROUPS}
    for row in rows:
        sentence = normalise(row.rsplit("\t", 1)[0])
        group = "teacher_train" if sentence in seen else "rt_elsewhere" if sentence in elsewhere else "nowhere"
        groups[group].append(row)
    return header, groups


def write_dev(folder: Path, sst2: Path, header: str, rows: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "dev.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    os.symlink((sst2 / "train.tsv").resolve(), folder / "train.tsv")
    return folder


def accuracy(model: Path, data: Path, threads: int) -> float:
    """``mudkd evaluate MODEL --task-name sst-2 --data-dir DATA``: its dev accuracy."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "mudkd", "evaluate", str(model), "--task-name", "sst-2", "--data-dir", str(data)]
    done = subprocess.run(
        [*command, "--max-seq-length", "64", "--json"], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"mudkd evaluate {model} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(done.stdout)["splits"]["dev"]["metrics"]["accuracy"])


def _model(path: Path) -> Path:
    return path / "final" if (path / "final" / "config.json").is_file() else path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, default=ROOT / "outputs" / "quickstart" / "teacher")
    parser.add_argument("--teacher-train", type=int, default=2000, help="rt-snippets the teacher trained on")
    parser.add_argument("--glue-dir", type=Path, default=ROOT.parent / "shared" / "data" / "glue")
    parser.add_argument("--students", type=Path, nargs="*", default=[], help="student or pipeline folders")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    sst2 = args.glue_dir / "SST-2"
    header, groups = split_dev(sst2, args.teacher_train)
    clean_rows = groups["rt_elsewhere"] + groups["nowhere"]
    with tempfile.TemporaryDirectory(prefix="sst2-overlap-") as scratch:
        folders = {name: write_dev(Path(scratch, name), sst2, header, rows) for name, rows in groups.items() if rows}
        folders["clean"] = write_dev(Path(scratch, "clean"), sst2, header, clean_rows)
        teacher = {name: accuracy(args.teacher, folder, args.threads) for name, folder in folders.items()}
        teacher["all"] = accuracy(args.teacher, sst2, args.threads)
        students = []
        for path in args.students:
            model = _model(path)
            every, clean = accuracy(model, sst2, args.threads), accuracy(model, folders["clean"], args.threads)
            students.append(
                {"model": str(model), "all": every, "clean": clean, "share_all": every / teacher["all"],
                 "share_clean": clean / teacher["clean"]}
            )  # fmt: skip
    document: dict[str, Any] = {
        "dev_examples": sum(len(rows) for rows in groups.values()),
        "groups": {name: len(rows) for name, rows in groups.items()},
        "teacher": teacher,
        "students": students,
    }
    if students:
        for key in ("all", "clean", "share_all", "share_clean"):
            values = [student[key] for student in students]
            document[f"students_{key}"] = {
                "mean": statistics.mean(values),
                "std": statistics.stdev(values) if len(values) > 1 else None,
            }
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    print(
        f"SST-2 dev: {document['dev_examples']} sentences; "
        + ", ".join(f"{k} {v}" for k, v in document["groups"].items())
    )
    print("teacher accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in teacher.items()))
    for student in students:
        print(
            f"  {student['model']}: all {student['all']:.4f} ({student['share_all']:.1%} of the teacher), "
            f"clean {student['clean']:.4f} ({student['share_clean']:.1%})"
        )
    if students:
        print(
            f"students: share of the teacher {document['students_share_all']['mean']:.1%} on all of dev, "
            f"{document['students_share_clean']['mean']:.1%} on the clean dev set"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
