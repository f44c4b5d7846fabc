#!/usr/bin/env bash
# Install what the platform needs, idempotently: Debian packages (as root), the Python
# virtualenv with the project, and the browser-side libraries from the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage that does something says how long it took.
stage_start=$SECONDS
took() { echo "setup: $1 took $((SECONDS - stage_start)) s"; stage_start=$SECONDS; }

DEB_PACKAGES=(postgresql-15 postgresql-15-postgis-3 chromium chromium-driver fonts-wqy-zenhei nodejs npm wrk nginx-light)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  # node/npm may come from elsewhere than Debian; accept them when on PATH
  case "$pkg" in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    # A fresh machine may have another apt run holding the dpkg lock: wait for it.
    apt-get -o DPkg::Lock::Timeout=600 update -q
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "${missing[@]}"
    took "Debian packages"
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
  took "the virtualenv"
fi
stamp=.venv/.gridgov-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages"
  .venv/bin/pip install -q --upgrade pip
  # No byte-compiling of every installed module up front (most of the install's time): Python
  # compiles each module the first time it is imported and keeps it in __pycache__.
  .venv/bin/pip install -q --no-compile -e '.[test]'
  touch "$stamp"
  took "Python packages"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing browser-side libraries (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  took "npm ci"
fi
echo "setup: ready"
