"""`make bench`: the retrieval-quality, latency, ingest and context-tier benchmarks, written to
docs/benchmarks.md.

python -m bench            # full size: 10 personas; 100k memories across 100 agents; 20k ingested;
                           # the context tiers in a namespace of 100k
python -m bench --quick    # small sizes, a couple of minutes
python -m bench --skip-scale-out   # without the PostgreSQL + Chroma server + two servers run

The LoCoMo run (bench/locomo.py) reads its data from `--locomo-data` (default: LOCOMO_DATA, else
../shared/data/locomo-dev/locomo_dev.json beside the checkout); without the file it says so and
goes on. So does the LoCoMo half of the condensing run (bench/condense.py), whose generated half
runs either way.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import cold_start, condense, ingest, latency, locomo, quality, tiers

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
LOCOMO_DATA = Path(
    os.environ.get(
        "LOCOMO_DATA", ROOT.parent / "shared" / "data" / "locomo-dev" / "locomo_dev.json"
    )
)


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=DOC)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--skip-scale-out",
        action="store_true",
        help="leave out the latency run in scale-out mode (PostgreSQL + chroma run + 2 servers)",
    )
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-tiers", action="store_true")
    parser.add_argument("--skip-locomo", action="store_true")
    parser.add_argument("--skip-condense", action="store_true")
    parser.add_argument("--locomo-data", type=Path, default=LOCOMO_DATA)
    args = parser.parse_args(argv)

    sections = [
        "# Benchmarks",
        "",
        f"Written by `python -m bench{' --quick' if args.quick else ''}` (`make bench`) on "
        f"{datetime.now(UTC):%Y-%m-%d}, {_machine()}. Absolute times depend on the machine and "
        "on what else runs on it; compare the ratios.",
        "",
    ]
    if not args.skip_quality:
        with tempfile.TemporaryDirectory() as scratch:
            report = Path(scratch) / "quality.md"
            quality.main(["--output", str(report), *(["--quick"] if args.quick else [])])
            sections += [
                "## Retrieval quality: evidence recall under a token budget",
                "",
                "Command: `python -m bench.quality" + (" --quick" if args.quick else "") + "`",
                "",
                report.read_text(),
            ]
    if not args.skip_locomo:
        sections += _locomo_section(args.locomo_data, args.quick)
    if not args.skip_condense:
        sections += _condense_section(args.locomo_data, args.quick)
    if not args.skip_latency:
        size = (5_000, 10, 100) if args.quick else (100_000, 100, 400)
        result = latency.main(
            ["--memories", str(size[0]), "--agents", str(size[1]), "--requests", str(size[2])]
        )
        sections += [
            "## Latency of `POST /v1/context`",
            "",
            f"Command: `python -m bench.latency --memories {size[0]} --agents {size[1]} "
            f"--requests {size[2]}` (the loaded data is kept under `var/bench/` and reused).",
            "",
            latency.markdown(result),
            "",
        ]
    if not args.skip_latency:
        size = (5_000, 10, 10) if args.quick else (100_000, 100, 30)
        command = ["--memories", str(size[0]), "--agents", str(size[1])]
        command += ["--namespaces", str(size[2])]
        result = cold_start.main(command)
        sections += [
            "## A namespace's first context call after a start",
            "",
            f"Command: `python -m bench.cold_start {' '.join(command)}` (the store of the "
            "latency run above).",
            "",
            cold_start.markdown(result),
            "",
        ]
    if not args.skip_latency and not args.skip_scale_out:
        size = (5_000, 10, 100) if args.quick else (100_000, 100, 400)
        command = [
            "--memories",
            str(size[0]),
            "--agents",
            str(size[1]),
            "--requests",
            str(size[2]),
            "--scale-out",
        ]
        result = latency.main(command)
        sections += [
            "## Latency of `POST /v1/context` in scale-out mode",
            "",
            f"Command: `python -m bench.latency {' '.join(command)}` (docs/deployment.md: "
            "PostgreSQL, a `chroma run` server and two server processes; the PostgreSQL server is "
            "`MEMORY_TEST_POSTGRES_URL`'s, or `--postgres`).",
            "",
            latency.markdown(result),
            "",
        ]
    if not args.skip_ingest:
        memories, batch_size, clients = (2_000, 100, 4) if args.quick else (20_000, 100, 4)
        result = ingest.main(
            [
                "--memories",
                str(memories),
                "--batch-size",
                str(batch_size),
                "--clients",
                str(clients),
            ]
        )
        sections += [
            "## Ingest throughput: `POST /v1/memories/batch` vs the bare embedder",
            "",
            f"Command: `python -m bench.ingest --memories {memories} --batch-size {batch_size} "
            f"--clients {clients}` (a fresh data dir each run).",
            "",
            ingest.markdown(result),
            "",
        ]
    if not args.skip_tiers:
        memories = 5_000 if args.quick else 100_000
        found = tiers.run(memories, users=1, calls=200, postgres=None)
        sections += [
            "## Context tiers against the size of a namespace",
            "",
            f"Command: `python -m bench.tiers --memories {memories} --users 1`.",
            "",
            tiers.report(found, memories, 1, "SQLite"),
            "",
        ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(sections))
    print(f"wrote {args.output}")


def _locomo_section(data: Path, quick: bool) -> list[str]:
    """The LoCoMo run's section, or a note that its data is not here."""
    heading = ["## Context relevance on real conversations (LoCoMo)", ""]
    if not data.is_file():
        note = f"Not run: no LoCoMo data at `{data}` (set LOCOMO_DATA or pass --locomo-data)."
        print(note, file=sys.stderr)
        return [*heading, note, ""]
    command = ["--data", str(data), *(["--conversations", "1"] if quick else [])]
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "locomo.md"
        locomo.main([*command, "--output", str(report)])
        shown = " ".join(["python -m bench.locomo", *command]).replace(str(data), data.name)
        return [*heading, f"Command: `{shown}`", "", report.read_text()]


def _condense_section(data: Path, quick: bool) -> list[str]:
    """Before and after condensing, on the LoCoMo data (or a note that it is not here) and on
    the generated chats."""
    lines = ["## Condensed memory: before and after summarizing", ""]
    runs = [["--synthetic", *(["--personas", "2"] if quick else [])]]
    if data.is_file():
        runs.insert(0, ["--data", str(data), *(["--conversations", "1"] if quick else [])])
    else:
        note = f"LoCoMo part not run: no data at `{data}` (set LOCOMO_DATA or pass --locomo-data)."
        print(note, file=sys.stderr)
        lines += [note, ""]
    for command in runs:
        with tempfile.TemporaryDirectory() as scratch:
            report = Path(scratch) / "condense.md"
            condense.main([*command, "--output", str(report)])
            shown = " ".join(["python -m bench.condense", *command]).replace(str(data), data.name)
            lines += [f"Command: `{shown}`", "", report.read_text()]
    return lines


if __name__ == "__main__":
    main()
