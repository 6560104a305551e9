#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser test (Playwright drives it; it never downloads a browser).
# Exits 0 either way: when Chromium cannot be installed, the browser test skips itself and says why.
set -u
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo "Installing Debian's chromium for the browser test"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo -n"; fi
if $sudo apt-get install -y -qq chromium >/dev/null 2>&1 || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq chromium >/dev/null 2>&1; }; then
  echo "Installed $(chromium --version)"
else
  echo "WARNING: could not install chromium (apt-get install chromium); the browser test will be skipped"
fi
