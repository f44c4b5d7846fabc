"""Two fresh checkouts set up side by side by the same account must not collide.

What two set-ups share is the account's package caches (pip's and npm's) and the machine (apt
waits for the dpkg lock: ``DPkg::Lock::Timeout`` in scripts/setup.sh); each checkout has its own
virtualenv, browser libraries and database cluster. A whole ``scripts/setup.sh`` installs every
Python dependency, which takes minutes per checkout; so this test runs, in two fresh clones at
once, the steps of the set-up that touch what is shared or could be: the virtualenv made (without
bootstrapping its own pip) and the project installed into it through the shared pip cache (its
build step included, not its dependencies), ``npm ci`` as setup.sh runs it from the shared npm
cache, and each checkout's private cluster created and started. Then each checkout has its own
working copy of everything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP = (ROOT / "scripts" / "setup.sh").read_text()
# The npm step exactly as scripts/setup.sh runs it (the cache is the account's, shared).
NPM_CI = re.search(r"^\s*(npm ci [^\n]*)$", SETUP, re.M).group(1).split()  # type: ignore[union-attr]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], log: list[str]) -> None:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    log.append(f"$ {' '.join(cmd)} -> {res.returncode}\n{res.stdout[-1500:]}{res.stderr[-1500:]}")
    if res.returncode:
        raise AssertionError("\n".join(log))


def _set_up(checkout: Path, env: dict[str, str]) -> list[str]:
    """The colliding steps of scripts/setup.sh in one checkout; the log of what ran."""
    log: list[str] = []
    venv_python = str(checkout / ".venv" / "bin" / "python")
    # The virtualenv, without the copy of pip that bootstrapping it installs (most of a minute,
    # and private to the checkout); the suite's pip installs into it.
    _run([env.get("PYTHON", "python3"), "-m", "venv", "--without-pip", ".venv"], checkout, env, log)
    # The project itself (editable, as setup.sh installs it, its build step included) through the
    # shared pip cache; its dependencies are what the rest of the suite already runs on.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv_python,
            "install",
            "-q",
            "--no-deps",
            "-e",
            ".",
        ],
        checkout,
        env,
        log,
    )
    _run(NPM_CI + ["--prefer-offline"], checkout, env, log)
    # The checkout's own cluster, created and started by this checkout's code.
    _run(
        [sys.executable, "-c", "from app.cli import main; main()", "db", "start"],
        checkout,
        dict(env, PYTHONPATH=str(checkout)),
        log,
    )
    return log


def _status(checkout: Path, env: dict[str, str]) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "db", "status"],
        cwd=checkout,
        env=dict(env, PYTHONPATH=str(checkout)),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(res.stdout)


def _stop(checkout: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", "db", "stop"],
        cwd=checkout,
        env=dict(env, PYTHONPATH=str(checkout)),
        capture_output=True,
        timeout=120,
    )


def test_two_checkouts_set_up_at_once_each_get_their_own_environment() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDGOV_", "VIRTUAL_ENV"))}
    env.pop("DATABASE_URL", None)
    base = Path(tempfile.mkdtemp(prefix="gg-setup-"))
    base.chmod(0o755)  # open to the database's account: each cluster lives in its checkout
    checkouts = [base / "one", base / "two"]
    data_dirs: set[str] = set()
    try:
        for c in checkouts:
            subprocess.run(["git", "clone", "-q", str(ROOT), str(c)], check=True, timeout=120)
        with ThreadPoolExecutor(2) as pool:
            logs = list(pool.map(lambda c: _set_up(c, env), checkouts))
        assert all(logs)
        lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
        for c in checkouts:
            # Each virtualenv runs this checkout's code.
            origin = subprocess.run(
                [
                    str(c / ".venv/bin/python"),
                    "-c",
                    "import importlib.util; print(importlib.util.find_spec('app').origin)",
                ],
                cwd="/",
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            assert Path(origin).resolve().is_relative_to(c.resolve()), (c, origin)
            # Each has the browser libraries of the lock file.
            for name in ("leaflet", "maplibre-gl", "chart.js"):
                got = json.loads((c / "node_modules" / name / "package.json").read_text())
                assert got["version"] == lock[f"node_modules/{name}"]["version"], (c, name)
            # Each has its own cluster, running.
            status = _status(c, env)
            assert status["running"] and status["initialised"], (c, status)
            data_dirs.add(status["data_dir"])
        assert len(data_dirs) == 2 and str(ROOT / "var" / "pg") not in data_dirs, data_dirs
    finally:
        for c in checkouts:
            if c.exists():
                _stop(c, env)
        for d in data_dirs:  # a cluster kept outside its checkout goes too
            if not Path(d).is_relative_to(base):
                shutil.rmtree(Path(d).parent, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
