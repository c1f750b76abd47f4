"""How long does labelbot take to start, and what does it import?

    .venv/bin/python bench/startup.py [--runs 5] [--tree PATH]

Each run is a fresh interpreter (nothing cached in the process; the OS file cache is warm after the
first run):

- build: import the CLI and load its commands, then `Runtime.build` (deps, the Bolt app with every
  listener, the scheduler) on a SQLite file: what a gunicorn worker does before it can answer;
- serve: `labelbot serve --http --workers 1` from exec until `GET /healthz` answers 200 (migration
  check, gunicorn master, one worker).

`--tree` measures another checkout (e.g. the commit before the lazy imports: `git archive REV | tar -x
-C /tmp/base`). Prints the median and the fastest run, and which heavy libraries the build imported.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "scipy", "statsmodels", "matplotlib", "pyarrow", "krippendorff", "openai")

BUILD = """
import json, sys, time
started = time.perf_counter()
from bot.cli import load_commands
from bot.config import Settings
from bot.runtime.server import Runtime
load_commands()
settings = Settings(database_url=sys.argv[1], slack_bot_token="xoxb-bench", slack_signing_secret="s",
                    openai_api_key="sk-bench")
runtime = Runtime.build(settings)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "heavy": [m for m in sys.argv[2].split(",") if m in sys.modules]}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(tree: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LABELBOT_", "OPENAI_"))}
    env.update(PYTHONPATH=str(tree), DATABASE_URL=db_url, SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET="s",
               SLACK_API_URL="http://127.0.0.1:9/api/", LABELBOT_LOG_LEVEL="WARNING")
    return env


def build_once(tree: Path, db_url: str) -> tuple[float, list[str], float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BUILD, db_url, ",".join(HEAVY)], cwd=tree, env=env_for(tree, db_url),
                          capture_output=True, text=True, timeout=300, check=True)
    wall = time.perf_counter() - started
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return data["seconds"], data["heavy"], wall


def serve_once(tree: Path, db_url: str) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--http", "--host", "127.0.0.1", "--port",
                             str(port), "--workers", "1"], cwd=tree, env=env_for(tree, db_url),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"serve exited with {proc.returncode}")
            time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", type=Path, default=ROOT)
    args = parser.parse_args()
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], cwd=tree, env=env_for(tree, db_url),
                       check=True, capture_output=True, timeout=300)
        builds = [build_once(tree, db_url) for _ in range(args.runs)]
        serves = [serve_once(tree, db_url) for _ in range(args.runs)]
    inside = [b[0] for b in builds]
    wall = [b[2] for b in builds]
    print(f"tree: {tree}  runs: {args.runs}  python {sys.version.split()[0]}")
    print(f"build (imports + Runtime.build), in process: median {statistics.median(inside):.2f} s, "
          f"fastest {min(inside):.2f} s")
    print(f"build, whole interpreter:                     median {statistics.median(wall):.2f} s, "
          f"fastest {min(wall):.2f} s")
    print(f"serve --http to first /healthz 200:           median {statistics.median(serves):.2f} s, "
          f"fastest {min(serves):.2f} s")
    print(f"heavy libraries imported by the build: {', '.join(builds[-1][1]) or 'none'}")


if __name__ == "__main__":
    main()
