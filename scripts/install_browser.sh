#!/usr/bin/env bash
# Headless Chromium for the web demo's browser tests (tests/test_web_demo.py): Debian's chromium and
# chromium-driver, from apt (never a browser download). Idempotent: does nothing when both are
# installed. Where apt-get is missing or we are not root (and no password-less sudo), it says so and
# skips: the browser tests then skip with that reason. Called by scripts/test.sh (CI).
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here: install chromium and its chromedriver yourself to run the browser tests" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_browser: not root: run 'apt-get install chromium chromium-driver' as root to run the browser tests" >&2
    exit 0
  fi
fi
echo "install_browser: installing Debian's chromium and chromium-driver (apt)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; then
  # a fresh machine may have no package lists yet
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null \
    || echo "install_browser: apt-get could not install chromium chromium-driver: the browser tests will skip" >&2
fi
exit 0
