#!/usr/bin/env bash
# Create .venv and install a requirements file into it, after checking the tools TorchServe needs.
# Usage: scripts/bootstrap.sh REQUIREMENTS_FILE
set -euo pipefail
requirements=$1
venv=.venv

fail() { echo "error: $*" >&2; exit 1; }

command -v python3 >/dev/null || fail "python3 is not installed; install Python 3.10+ (apt-get install python3 python3-venv)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  fail "Python 3.10+ is needed, found $(python3 --version 2>&1)"
command -v java >/dev/null ||
  fail "TorchServe needs Java 11+ and java is not on PATH; install it with: sudo apt-get install openjdk-17-jre-headless"
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)\.\{0,1\}\([0-9]*\).*/\1 \2/p' | awk '{print ($1 == 1) ? $2 : $1}')
[ "${java_major:-0}" -ge 11 ] ||
  fail "TorchServe needs Java 11+, found $(java -version 2>&1 | head -1); install it with: sudo apt-get install openjdk-17-jre-headless"

if [ ! -x "$venv/bin/python" ]; then
  echo "Creating $venv"
  python3 -m venv "$venv"
fi
echo "Installing $requirements into $venv (torch is large: the first time takes a few minutes)"
"$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r "$requirements"
