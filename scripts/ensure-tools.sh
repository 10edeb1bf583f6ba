#!/usr/bin/env bash
# Installs the test tools, once:
#   sipp          (Debian package sip-tester) plays the SIP trunk in tests/tests/sip.rs
#   schemathesis  (PyPI, into .tools/venv, kept out of git) property-based checks of the HTTP
#                 gateway against its OpenAPI document
# Prints nothing when they are already there. Needs python3 with venv (Debian: python3-venv,
# installed here when missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
if ! command -v sipp >/dev/null 2>&1; then
    echo "ensure-tools: installing sipp (Debian package sip-tester)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends sip-tester </dev/null
fi

SCHEMATHESIS_VERSION=4.32.5
venv=.tools/venv
if [[ -x $venv/bin/schemathesis ]] && [[ $($venv/bin/schemathesis --version 2>/dev/null) == *"$SCHEMATHESIS_VERSION"* ]]; then
    exit 0
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "ensure-tools: installing python3-venv" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv </dev/null
fi
echo "ensure-tools: installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
"$venv/bin/schemathesis" --version >&2
