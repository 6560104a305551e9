#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser test (Playwright drives it; it never downloads a browser).
# On a developer's machine a Chromium that cannot be installed only skips the browser test, loudly; in CI (CI=true)
# it is a failure, so a green CI run always includes the browser test.
set -u
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's chromium for the browser test"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo -n"; fi
if $sudo apt-get install -y -qq chromium >/dev/null 2>&1 || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq chromium >/dev/null 2>&1; }; then
  echo "Installed $(chromium --version)"
elif [ "${CI:-}" = "true" ]; then
  echo "error: could not install chromium (apt-get install chromium), and CI=true needs the browser test" >&2
  exit 1
else
  echo "WARNING: could not install chromium (apt-get install chromium); the browser test will be skipped"
fi
