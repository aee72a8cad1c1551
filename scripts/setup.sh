#!/usr/bin/env bash
# Set up a fresh machine for handwriting: system packages (Tesseract, Chromium for the
# browser test, ncompress to make .Z files in the pen-digits download tests, SLURM and
# munge for the single-node cluster of tests/test_slurm.py), a virtualenv
# in .venv, torch (CPU) first, then the package + dev extras.
#
#   bash scripts/setup.sh                 # everything
#   SKIP_APT=1 bash scripts/setup.sh      # no system packages (no root / not Debian)
#   TORCH_INDEX=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
#                                          # CPU wheel from PyTorch's index (avoids the CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

apt_packages=(tesseract-ocr tesseract-ocr-eng chromium chromium-driver ncompress
              slurm-wlm slurmctld slurmd munge)
if [[ -z "${SKIP_APT:-}" ]] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "==> apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
elif ! command -v tesseract >/dev/null; then
  echo "warning: tesseract not found; install it (apt/brew/choco) for the OCR baseline" >&2
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" --upgrade pip
echo "==> torch 2.13.0 (CPU) first, so nothing pulls a CUDA build"
if [[ -n "${TORCH_INDEX:-}" ]]; then
  "${PIP[@]}" torch==2.13.0 --index-url "$TORCH_INDEX"
else
  "${PIP[@]}" torch==2.13.0
fi
# Everything the package, the app and train.py import is declared in pyproject.toml
# (tests/test_dependencies.py checks it), so this one install brings it all.
echo "==> handwriting + dev extras"
"${PIP[@]}" -e ".[dev]"
echo "==> ready: $VENV/bin/python train.py"
