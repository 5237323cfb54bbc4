#!/usr/bin/env bash
# Make sure the machine has what the project needs beyond PyPI: Python 3.11, a
# Java 17+ runtime and Maven (to fetch and run the Apache Kafka broker),
# PostgreSQL's server binaries (the projection store's tests start a throwaway one)
# and Chromium (the console's browser test drives it; Playwright's own download
# is never used).
# Installs the missing ones from Debian's packages when run as root; otherwise
# says exactly what to install.
set -euo pipefail

missing=()
# `--bench`: also the load generator the server benchmarks use.
if [ "${1:-}" = "--bench" ]; then command -v wrk >/dev/null 2>&1 || missing+=(wrk); fi
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
[ -x /usr/bin/chromium ] || missing+=(chromium)
# promtool (Debian's prometheus package): the alert rules are checked and unit-tested.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# Node.js and npm: the contract tests check the JSON Schemas with ajv, as JavaScript teams do.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ! command -v python3.11 >/dev/null 2>&1 && ! python3 -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
  missing+=(python3.11 python3.11-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "error: missing ${missing[*]}; install them (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
