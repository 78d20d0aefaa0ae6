#!/usr/bin/env bash
# Fetches torchvision's ImageNet ResNet-34 (the MLPerf SSD backbone, spec/ssd-reference.md 1.3)
# for `--pretrained-backbone`:
#
#   tools/download_resnet34_backbone.sh [DEST [URL [SHA256_PREFIX]]]
#
# DEST defaults to resnet34-333f7ec4.pth in the current directory. The file is downloaded to
# a temp name beside DEST, its sha256 must start with SHA256_PREFIX (torchvision's convention:
# the hex after the dash in the file name, 333f7ec4), and only then is it renamed to DEST, so
# DEST is either absent/unchanged or the complete verified file. URL and SHA256_PREFIX exist
# for mirrors and for the test (which uses a file:// URL); they default to torchvision's.
set -euo pipefail
dest=${1:-resnet34-333f7ec4.pth}
url=${2:-https://download.pytorch.org/models/resnet34-333f7ec4.pth}
want=${3:-333f7ec4}
tmp="$dest.part.$$"
trap 'rm -f "$tmp"' EXIT
if command -v curl >/dev/null; then
  curl -fsSL --retry 3 -o "$tmp" "$url"
elif command -v wget >/dev/null; then
  wget -q -O "$tmp" "$url"
else
  echo "download_resnet34_backbone: neither curl nor wget is installed" >&2
  exit 1
fi
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [[ "$got" != "$want"* ]]; then
  echo "download_resnet34_backbone: $url: sha256 $got does not start with $want; not saved" >&2
  exit 1
fi
mv -f "$tmp" "$dest"
trap - EXIT
echo "download_resnet34_backbone: $dest ($(stat -c %s "$dest") bytes, sha256 $got)"
