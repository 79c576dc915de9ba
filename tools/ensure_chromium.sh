#!/usr/bin/env bash
# Make sure a Chromium is there for `make test-ui`: Debian's package, installed with apt-get when missing
# (CI runs as root on Debian). Playwright drives it through executable_path; its own browser download is
# never used. Elsewhere, install Chromium or Chrome yourself, or point CHROMIUM at one.
set -euo pipefail
if [ -n "${CHROMIUM:-}" ]; then
  [ -x "$CHROMIUM" ] || { echo "CHROMIUM=$CHROMIUM is not an executable" >&2; exit 1; }
  exit 0
fi
for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then exit 0; fi
done
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing Debian's chromium for the browser test (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  exit 0
fi
echo "no Chromium found: install chromium (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM=/path" >&2
exit 1
