#!/usr/bin/env bash
# tools/download_coco2017.sh without network: tiny fake zips with the real names and inner
# layout are served through file:// URLs (--base-url), their md5s given through the
# SSD_COCO_MD5_* overrides. Checked:
#   - --help works; an unknown option fails;
#   - without unzip and bsdtar on PATH the script fails naming the Debian packages;
#   - a wrong md5 fails naming the zip, leaves no train2017/val2017/annotations, no partial
#     download, no extraction directory and not the bad zip (a zip verified before it is kept
#     for the next run, which must then say "verified earlier");
#   - a missing URL fails naming the file and leaves nothing half-done;
#   - a zip without the expected inner directory fails and leaves no extracted files;
#   - success, starting from a truncated partial download that must be resumed: the exact
#     layout with every file byte-identical to the zips' contents, the counts and the next
#     command printed, the zips and temporary directories gone;
#   - a second run is a no-op (says so, downloads nothing even from a dead URL, changes no file);
#   - with bsdtar installed, success through bsdtar too.
# Needs curl (file:// URLs), python3 (zipfile) and unzip or bsdtar; without them it FAILS with
# the reason (CI must install them: Debian packages curl, python3, unzip or libarchive-tools).
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
script=$src/tools/download_coco2017.sh
fail() {
    echo "FAIL: $*"
    exit 1
}
command -v curl >/dev/null ||
    fail "curl is not installed (Debian package curl); the test serves file:// URLs through it"
command -v python3 >/dev/null ||
    fail "python3 is not installed; the test builds its zips with python3 zipfile"
if ! command -v unzip >/dev/null && ! command -v bsdtar >/dev/null; then
    fail "neither unzip nor bsdtar is installed (Debian package unzip or libarchive-tools);" \
        "tools/download_coco2017.sh needs one"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
srv=$work/server
mkdir -p "$srv/zips" "$srv/annotations" "$srv/bad/zips" "$srv/bad/annotations"

# The fake dataset: 3 train and 2 val "images" (distinct bytes), the annotation files the real
# zip has (instances, captions, person_keypoints); a "bad" val2017.zip with the wrong top-level
# directory.
python3 - "$srv" <<'EOF' || fail "cannot build the fake zips"
import sys, zipfile
srv = sys.argv[1]
def make(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
train = [("train2017/", b"")] + [("train2017/%012d.jpg" % i, b"\xff\xd8train%d" % i * 50)
                                 for i in (9, 25, 30)]
val = [("val2017/", b"")] + [("val2017/%012d.jpg" % i, b"\xff\xd8val%d" % i * 40)
                             for i in (139, 285)]
ann = [("annotations/%s_%s2017.json" % (k, s), b'{"images": [], "kind": "%s %s"}' % (
    k.encode(), s.encode())) for k in ("instances", "captions", "person_keypoints")
       for s in ("train", "val")]
make(srv + "/zips/train2017.zip", train)
make(srv + "/zips/val2017.zip", val)
make(srv + "/annotations/annotations_trainval2017.zip", ann)
make(srv + "/bad/zips/val2017.zip", [("images/val2017/%012d.jpg" % 139, b"x")])
EOF
cp "$srv/zips/train2017.zip" "$srv/bad/zips/"
cp "$srv/annotations/annotations_trainval2017.zip" "$srv/bad/annotations/"
md5of() { md5sum "$1" | cut -d' ' -f1; }
SSD_COCO_MD5_TRAIN=$(md5of "$srv/zips/train2017.zip")
SSD_COCO_MD5_VAL=$(md5of "$srv/zips/val2017.zip")
SSD_COCO_MD5_ANN=$(md5of "$srv/annotations/annotations_trainval2017.zip")
export SSD_COCO_MD5_TRAIN SSD_COCO_MD5_VAL SSD_COCO_MD5_ANN
unset SSD_COCO_DOWNLOADER SSD_COCO_EXTRACTOR

run() { # dir log args...: runs the script, output to log (and echoed), returns its status
    local d=$1 log=$2
    shift 2
    "$BASH" "$script" "$d" "$@" >"$log" 2>&1
    local rc=$? line
    while IFS= read -r line; do echo "    | $line"; done <"$log"
    return $rc
}
# Nothing of the dataset and nothing half-done in $1.
assert_clean() {
    local d=$1 what=$2 f
    for f in train2017 val2017 annotations; do
        [[ ! -e "$d/$f" ]] || fail "$what: $d/$f was left behind"
    done
    if [[ -d "$d" ]]; then
        [[ -z "$(find "$d" -path '*/partial/*' -type f)" ]] ||
            fail "$what: a partial download was left behind"
        [[ -z "$(find "$d" -name '.extract.*')" ]] ||
            fail "$what: an extraction directory was left behind"
    fi
}

echo "== --help, unknown option"
bash "$script" --help | grep -q "usage: tools/download_coco2017.sh" || fail "--help prints no usage"
if bash "$script" --frobnicate >/dev/null 2>&1; then fail "an unknown option was accepted"; fi

echo "== no unzip and no bsdtar on PATH"
bin=$work/bin
mkdir -p "$bin"
for t in curl md5sum; do ln -s "$(command -v $t)" "$bin/$t"; done
d=$work/noextract
if PATH=$bin run "$d" "$work/log" --base-url "file://$srv"; then fail "ran without an extractor"; fi
grep -q "neither unzip nor bsdtar" "$work/log" || fail "the missing extractor is not named"
grep -q "libarchive-tools" "$work/log" || fail "the Debian package is not named"
assert_clean "$d" "no extractor"

echo "== wrong md5 for val2017.zip"
d=$work/coco
zero=00000000000000000000000000000000
if SSD_COCO_MD5_VAL=$zero run "$d" "$work/log" --base-url "file://$srv"; then
    fail "a zip with the wrong md5 was accepted"
fi
grep -q "val2017.zip: md5 $SSD_COCO_MD5_VAL, expected $zero" "$work/log" ||
    fail "the error does not name the zip and both md5s"
assert_clean "$d" "wrong md5"
[[ -z "$(find "$d" -name val2017.zip)" ]] || fail "the zip with the wrong md5 was kept"
[[ -f "$d/.download/annotations_trainval2017.zip" ]] ||
    fail "the verified annotations zip was not kept"

echo "== missing URL"
d2=$work/missing
nowhere=file://$work/nowhere
if run "$d2" "$work/log" --base-url "$nowhere"; then fail "a missing URL was accepted"; fi
ann=annotations_trainval2017.zip
grep -q "$ann: download from $nowhere/annotations/$ann failed" "$work/log" ||
    fail "the error does not name the missing file"
assert_clean "$d2" "missing URL"
[[ -z "$(find "$d2" -type f)" ]] || fail "missing URL: files were left behind"

echo "== a zip without the expected top-level directory"
d3=$work/badlayout
bad_md5=$(md5of "$srv/bad/zips/val2017.zip")
if SSD_COCO_MD5_VAL=$bad_md5 run "$d3" "$work/log" --base-url "file://$srv/bad"; then
    fail "a zip without val2017/ was accepted"
fi
grep -q "val2017.zip: has no top-level directory val2017/" "$work/log" ||
    fail "the bad layout is not named"
assert_clean "$d3" "bad layout"

echo "== success, resuming a truncated train2017.zip"
size=$(stat -c %s "$srv/zips/train2017.zip")
head -c $((size / 2)) "$srv/zips/train2017.zip" >"$d/.download/partial/train2017.zip"
run "$d" "$work/log" --base-url "file://$srv" || fail "the download failed"
grep -q "train2017.zip: resuming from $((size / 2)) bytes" "$work/log" ||
    fail "the partial download was not resumed"
grep -q "annotations_trainval2017.zip: verified earlier" "$work/log" ||
    fail "the verified zip was downloaded again"
grep -q "train2017 3 images, val2017 2 images" "$work/log" || fail "wrong image counts"
grep -q "next: ssd train --data $d" "$work/log" || fail "the next command is not printed"
x=$work/expect
mkdir -p "$x"
(cd "$x" && unzip -q "$srv/zips/train2017.zip" && unzip -q "$srv/zips/val2017.zip" &&
    unzip -q "$srv/annotations/annotations_trainval2017.zip") 2>/dev/null ||
    python3 -c "import sys, zipfile; [zipfile.ZipFile(z).extractall(sys.argv[1])
                for z in sys.argv[2:]]" \
        "$x" "$srv/zips/train2017.zip" "$srv/zips/val2017.zip" "$srv/annotations/$ann"
diff -r "$x" "$d" || fail "the extracted tree differs from the zips' contents"
listing() { (cd "$1" && find . | LC_ALL=C sort | tr '\n' ' '); }
[[ "$(listing "$d")" == "$(listing "$x")" ]] ||
    fail "extra files in $d (zips or temporary directories left)"

echo "== second run is a no-op"
before=$(cd "$d" && find . -printf '%p %s %T@\n' | LC_ALL=C sort)
run "$d" "$work/log" --base-url "file://$work/nowhere" || fail "the second run failed"
grep -q "already complete; nothing to do" "$work/log" ||
    fail "the second run does not say it is a no-op"
after=$(cd "$d" && find . -printf '%p %s %T@\n' | LC_ALL=C sort)
[[ "$before" == "$after" ]] || fail "the second run changed files"

if command -v bsdtar >/dev/null; then
    echo "== success through bsdtar"
    d4=$work/bsdtar
    SSD_COCO_EXTRACTOR=bsdtar run "$d4" "$work/log" --base-url "file://$srv" ||
        fail "bsdtar extraction failed"
    diff -r "$x" "$d4" || fail "the bsdtar tree differs"
else
    echo "(bsdtar not installed: its extraction path is not exercised)"
fi
echo "test_download_coco: PASS"
