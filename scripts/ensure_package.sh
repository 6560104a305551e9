#!/usr/bin/env bash
# Usage: scripts/ensure_package.sh PACKAGE PRESENT WHAT
# Make sure one of Debian's packages is installed for the tests that need it (`make test` runs it for chromium, which
# Playwright drives without ever downloading a browser, and for postgresql, which the corrections tests start in a
# temporary folder on loopback). PRESENT is a shell test that holds once it is installed; WHAT names those tests.
# On a developer's machine that cannot install it, those tests skip or fail saying what to run; in CI (CI=true) this
# script fails at once, so a green CI run always includes them.
set -u
package=$1 present=$2 what=$3
if eval "$present" >/dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's $package for $what"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo -n"; fi
install() { $sudo apt-get install -y -qq "$package" >/dev/null 2>&1; }
if install || { $sudo apt-get update -qq >/dev/null 2>&1 && install; }; then
  echo "Installed $package"
elif [ "${CI:-}" = "true" ]; then
  echo "error: could not install $package (apt-get install $package), and CI=true needs $what" >&2
  exit 1
else
  echo "WARNING: could not install $package (apt-get install $package); $what will not run"
fi
