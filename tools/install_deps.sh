#!/usr/bin/env bash
# Installs, with apt-get, whatever the build and the tests need that this machine lacks, then the
# PyPI test oracles (pycocotools) into .venv-oracle/ (tools/install_pydeps.sh).
# Debian 12 package names. Run as root (or with sudo available). Idempotent: installs nothing
# when everything is present.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config            # toolchain
  libdnnl-dev                                 # oneDNN: the cpu backend
  ocl-icd-opencl-dev                          # dnnl-config.cmake finds OpenCL (a Recommends of libdnnl-dev)
  libturbojpeg0-dev                           # libjpeg-turbo: JPEG decode
  libopenmpi-dev openmpi-bin                  # MPI data parallelism
  libcjson-dev                                # JSON (annotations, safetensors headers)
  libarchive-dev                              # tar/zip containers of .pth files
  libcmocka-dev                               # unit-test framework
  clang libclang-rt-14-dev                    # make fuzz: libFuzzer + sanitizers (clang 14)
  curl                                        # tools/download_resnet34_backbone.sh, download_coco2017.sh
  unzip                                       # tools/download_coco2017.sh: extracts the COCO zips
  python3-torch python3-pil                   # test oracle only (goldens), /usr/bin/python3
  python3-torchvision                         # test/bench oracle only: the torchvision data pipeline
  python3-venv                                # .venv-oracle: pycocotools from PyPI (tests only)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PKGS[@]} packages present"
else
  echo "install_deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bash "$(dirname "$0")/install_pydeps.sh"
