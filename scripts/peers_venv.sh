#!/usr/bin/env bash
# Create .venv/peers, a venv that sees every package of .venv (a .pth file puts .venv's site-packages on its path),
# and install a requirements file into it: what only the benchmark imports, kept out of TorchServe's workers.
# Usage: scripts/peers_venv.sh REQUIREMENTS_FILE
set -euo pipefail
requirements=$1
base=.venv
peers=$base/peers

site_of() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

if [ ! -x "$peers/bin/python" ]; then
  echo "Creating $peers (the benchmark's peers, over $base)"
  "$base/bin/python" -m venv "$peers"
fi
site_of "$base" > "$(site_of "$peers")/base-venv.pth"
echo "Installing $requirements into $peers"
"$peers/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r "$requirements"
