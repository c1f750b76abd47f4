"""The container, as far as this machine can test it (it reaches no image registry):

- compose.yaml is wired right: services, the env variables of the README, healthchecks, depends_on with
  conditions, migrations on start, ports, a named volume;
- the Dockerfile's install command and entry command run in a fresh venv: `pip install .` from exactly
  what the Dockerfile copies, then its CMD with its ENV serves, and its HEALTHCHECK passes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.sandbox.fake_slack import FakeSlack
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, TEAM
from tests.test_replicas import free_port

ROOT = Path(__file__).resolve().parents[1]
# Variables of the README's table that have no place in the deployment: the test suite's database, and
# the scheduler switch of an external `bot.wsgi` gunicorn (the image runs `labelbot serve`).
NOT_IN_COMPOSE = {"LABELBOT_TEST_POSTGRES_URL", "LABELBOT_SCHEDULER", "PROMETHEUS_MULTIPROC_DIR",
                  "LABELBOT_HOST", "LABELBOT_PORT", "LABELBOT_HTTP"}


def readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("### Environment variables"):]
    table = table[: table.index("\n\n", table.index("| variable"))]
    names: set[str] = set()
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))


def test_compose_wiring() -> None:
    c = compose()
    services = c["services"]
    assert set(services) == {"postgres", "migrate", "labelbot"}

    pg = services["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volume, mount = pg["volumes"][0].split(":")
    assert mount == "/var/lib/postgresql/data" and volume in c["volumes"]  # a named volume
    assert "ports" not in pg  # the database is not published

    bot, migrate = services["labelbot"], services["migrate"]
    assert bot["build"] == migrate["build"] == "." and bot["image"] == migrate["image"]
    assert migrate["command"] == ["labelbot", "db", "upgrade"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert bot["command"] == ["labelbot", "serve", "--http"]
    assert bot["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                 "migrate": {"condition": "service_completed_successfully"}}
    assert bot["ports"] == ["3000:3000"]
    assert "/healthz" in " ".join(bot["healthcheck"]["test"])
    assert bot["healthcheck"]["test"][1:] == dockerfile()["healthcheck"]  # the same probe as the image's

    env = bot["environment"]
    assert env == migrate["environment"]
    missing = readme_variables() - NOT_IN_COMPOSE - set(env)
    assert not missing, f"README variables not passed to the container: {sorted(missing)}"
    url = env["DATABASE_URL"]
    assert re.fullmatch(r"postgresql\+psycopg://labelbot:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432/labelbot", url)
    assert pg["environment"]["POSTGRES_USER"] == "labelbot" and pg["environment"]["POSTGRES_DB"] == "labelbot"
    assert pg["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")  # no default password
    assert int(bot["stop_grace_period"].rstrip("s")) > 30  # longer than gunicorn's graceful timeout


def dockerfile() -> dict[str, Any]:
    """The Dockerfile's ENV, COPY sources, pip install command, HEALTHCHECK and CMD."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    out: dict[str, Any] = {"env": {}, "copy": [], "install": None}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                out["env"][key] = value
        elif word == "COPY":
            out["copy"].extend(shlex.split(rest)[:-1])
        elif word == "RUN" and "pip install" in rest:
            out["install"] = shlex.split(rest.split("&&")[0])
        elif word == "HEALTHCHECK":
            out["healthcheck"] = json.loads(rest[rest.index("CMD") + 3:])
        elif word == "CMD":
            out["cmd"] = json.loads(rest)
        elif word == "FROM":
            out["from"] = rest
        elif word == "USER":
            out["user"] = rest
    return out


def test_dockerfile_shape() -> None:
    d = dockerfile()
    assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", d["from"])
    assert d["user"] == "labelbot"  # not root
    assert d["install"] == ["pip", "install", "."]
    assert d["cmd"] == ["labelbot", "serve", "--http"]
    assert d["env"]["LABELBOT_PORT"] == "3000"


def _offline_site(venv: Path) -> None:
    """Let the fresh venv see this venv's installed packages (no download of pandas & co.), except labelbot
    itself, through a directory of links and a .pth file."""
    shared = Path(sysconfig.get_paths()["purelib"])
    view = venv / "shared-view"
    view.mkdir()
    for entry in shared.iterdir():
        if "labelbot" in entry.name or entry.name.startswith(("__editable__", "pip", "_distutils_hack")):
            continue
        if entry.suffix == ".pth":
            continue
        (view / entry.name).symlink_to(entry)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "shared-view.pth").write_text(str(view) + "\n", encoding="utf-8")


def test_dockerfile_install_and_entry_commands_in_a_fresh_venv(tmp_path: Path) -> None:
    d = dockerfile()
    app = tmp_path / "app"  # exactly what the Dockerfile copies
    app.mkdir()
    for src in d["copy"]:
        path = ROOT / src
        if path.is_dir():
            shutil.copytree(path, app / src, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, app / src)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _offline_site(venv)
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "LABELBOT_", "OPENAI_", "PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(d["env"])
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"

    # RUN pip install . (build isolation fetches setuptools and wheel; the dependencies are already there)
    install = subprocess.run(d["install"], cwd=app, env=env, capture_output=True, text=True, timeout=600)
    if install.returncode != 0 and "Could not find a version that satisfies" in install.stdout + install.stderr:
        if os.environ.get("CI"):
            pytest.fail("pip could not fetch the build backend:\n" + install.stderr[-3000:])
        pytest.skip("no package index reachable for the build backend (setuptools, wheel)")
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    site = next((venv / "lib").glob("python3*/site-packages"))
    manifest = site / "bot" / "app_manifest.yml"
    assert manifest.is_file() and not manifest.is_symlink()  # the package ships the manifest itself
    assert "channels:read" in manifest.read_text(encoding="utf-8")

    # CMD, with the image's ENV (on a free port) and a database and Slack of our own
    port = free_port()
    with FakeSlack(bot_token=BOT_TOKEN, team_id=TEAM) as fake:
        env.update(LABELBOT_PORT=str(port), LABELBOT_HOST="127.0.0.1", LABELBOT_WORKERS="1",
                   DATABASE_URL=f"sqlite:///{tmp_path / 'image.db'}", SLACK_BOT_TOKEN=BOT_TOKEN,
                   SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=fake.api_url)
        log = (tmp_path / "serve.log").open("wb")
        home = tmp_path / "home"
        home.mkdir()
        proc = subprocess.Popen(d["cmd"], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            probe = [str(bin_dir / "python"), *d["healthcheck"][1:]]
            while True:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                health = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30)
                if health.returncode == 0:
                    break
                assert time.monotonic() < deadline, health.stderr + (tmp_path / "serve.log").read_text()
                time.sleep(0.3)
            which = subprocess.run([str(bin_dir / "python"), "-c", "import bot; print(bot.__file__)"], env=env,
                                   cwd=home, capture_output=True, text=True, timeout=60)
            assert which.stdout.strip().startswith(str(site)), which.stdout  # the fresh install, not the tree
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
    text = (tmp_path / "serve.log").read_text()
    assert f"labelbot serving HTTP on 127.0.0.1:{port} with 1 worker(s) x 8 thread(s)" in text, text
    assert "Traceback" not in text
