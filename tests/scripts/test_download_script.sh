#!/usr/bin/env bash
# tools/download_resnet34_backbone.sh without network: a file:// URL whose sha256 does not
# start with the expected prefix must fail (non-zero) and leave no file; a matching prefix
# must give the file. (The real torchvision URL cannot be reached from CI.)
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf 'not a resnet\n' > "$dir/fake.pth"
if bash "$src/tools/download_resnet34_backbone.sh" "$dir/out.pth" "file://$dir/fake.pth"; then
  echo "FAIL: a file with the wrong hash was accepted"; exit 1
fi
if ls "$dir" | grep -v '^fake.pth$'; then echo "FAIL: files left behind"; exit 1; fi
if bash "$src/tools/download_resnet34_backbone.sh" "$dir/out.pth" "file://$dir/missing.pth"; then
  echo "FAIL: a missing URL was accepted"; exit 1
fi
prefix=$(sha256sum "$dir/fake.pth" | cut -c1-8)
bash "$src/tools/download_resnet34_backbone.sh" "$dir/out.pth" "file://$dir/fake.pth" "$prefix" || exit 1
cmp "$dir/fake.pth" "$dir/out.pth" || exit 1
echo "PASS"
