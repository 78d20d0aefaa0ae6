#!/usr/bin/env bash
# Downloads COCO 2017 (detection) into the reference's layout, the one `ssd train --data DIR`
# reads (spec/ssd-reference.md 6.1, src/data/coco_json.h ssd_coco_split_paths):
#
#   DIR/train2017/*.jpg   DIR/val2017/*.jpg   DIR/annotations/instances_{train,val}2017.json
#
# Run `tools/download_coco2017.sh --help` for usage. How it works:
#   1. Download. The three zips (zips/train2017.zip 18 GB, zips/val2017.zip 0.8 GB,
#      annotations/annotations_trainval2017.zip 0.25 GB) go to DIR/.download/partial/, resumably
#      (curl -C - or wget -c): an interrupted run continues where it stopped.
#   2. Verify. Each finished zip's md5 must equal the published one; only then is it moved to
#      DIR/.download/. A zip with a wrong md5 is deleted (resuming cannot repair it) and the
#      script fails naming it.
#   3. Extract, only after every needed zip is verified, into a temporary directory inside DIR,
#      check the expected inner layout, then rename the parts into place. On any failure the
#      temporary directory is removed: DIR never holds a half-extracted tree.
#   4. The zips are deleted (--keep-zips keeps them), the image counts and the next command are
#      printed. Running again after success changes nothing and says so.
#
# Published md5s (the same three values appear in many independent public download scripts,
# e.g. intel/neural-compressor examples/pytorch/fx/object_detection/maskrcnn/download_dataset.sh;
# cocodataset.org itself publishes none):
#   train2017.zip                 cced6f7f71b7629ddf16f17bbcfab6b2
#   val2017.zip                   442b8da7639aecaf257c1dceb8ba8c80
#   annotations_trainval2017.zip  f4bbac642086de4f52a3fdda2de5fa2c
set -euo pipefail

prog=download_coco2017
die() {
    echo "$prog: error: $*" >&2
    exit 1
}
say() { echo "$prog: $*"; }

usage() {
    cat <<'EOF'
usage: tools/download_coco2017.sh [DIR] [--base-url URL] [--keep-zips] [--help]

Downloads COCO 2017 into DIR (default ./coco2017) in the layout `ssd train --data DIR` reads:
  DIR/train2017/*.jpg, DIR/val2017/*.jpg, DIR/annotations/instances_{train,val}2017.json
Needs curl or wget, md5sum, and unzip or bsdtar (Debian: apt-get install curl unzip, or
libarchive-tools for bsdtar). About 20 GB of downloads and 20 GB extracted (the zips are
deleted after extraction unless --keep-zips). Interrupted downloads resume when run again;
a finished DIR makes a re-run a no-op.

options:
  --base-url URL  where the files are (default http://images.cocodataset.org); the script
                  fetches URL/zips/train2017.zip, URL/zips/val2017.zip and
                  URL/annotations/annotations_trainval2017.zip (file:// works with curl)
  --keep-zips     keep the verified zips in DIR/.download after extraction
  --help          this text

environment:
  SSD_COCO_MD5_TRAIN, SSD_COCO_MD5_VAL, SSD_COCO_MD5_ANN
                  expected md5 of each zip (default: the published values); "skip" prints the
                  computed md5 instead of checking it
  SSD_COCO_DOWNLOADER=curl|wget, SSD_COCO_EXTRACTOR=unzip|bsdtar
                  force a tool (default: the first one found, in that order)
EOF
}

dir=
base=http://images.cocodataset.org
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
    -h | --help)
        usage
        exit 0
        ;;
    --base-url)
        [[ $# -ge 2 && -n "$2" ]] || die "--base-url needs a URL"
        base=$2
        shift 2
        ;;
    --base-url=*)
        base=${1#--base-url=}
        shift
        ;;
    --keep-zips)
        keep=1
        shift
        ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
        [[ -z "$dir" ]] || die "more than one DIR given ('$dir' and '$1'; see --help)"
        dir=$1
        shift
        ;;
    esac
done
dir=${dir:-./coco2017}
base=${base%/}

# part table: name, URL path, expected md5, what it must contain after extraction
names=(annotations val2017 train2017)
declare -A path=([annotations]=annotations/annotations_trainval2017.zip
    [val2017]=zips/val2017.zip [train2017]=zips/train2017.zip)
declare -A md5=([annotations]=${SSD_COCO_MD5_ANN:-f4bbac642086de4f52a3fdda2de5fa2c}
    [val2017]=${SSD_COCO_MD5_VAL:-442b8da7639aecaf257c1dceb8ba8c80}
    [train2017]=${SSD_COCO_MD5_TRAIN:-cced6f7f71b7629ddf16f17bbcfab6b2})

# Is part $1 in place in $2 (DIR or the extraction directory)?
present() {
    case "$1" in
    annotations) [[ -f "$2/annotations/instances_train2017.json" &&
        -f "$2/annotations/instances_val2017.json" ]] ;;
    *) [[ -d "$2/$1" ]] ;;
    esac
}

count_jpg() { find "$1" -maxdepth 1 -type f -name '*.jpg' | wc -l; }

finish() {
    local ntrain nval
    ntrain=$(count_jpg "$dir/train2017")
    nval=$(count_jpg "$dir/val2017")
    say "$dir: train2017 $ntrain images, val2017 $nval images," \
        "annotations/instances_{train,val}2017.json"
    [[ "$ntrain" -gt 0 && "$nval" -gt 0 ]] || say "warning: an image directory is empty"
    say "next: ssd train --data $dir"
}

needed=()
for n in "${names[@]}"; do
    present "$n" "$dir" || needed+=("$n")
done
if [[ ${#needed[@]} -eq 0 ]]; then
    say "$dir is already complete; nothing to do"
    finish
    exit 0
fi

# ---- tools (checked before anything is downloaded) ----
have() { command -v "$1" >/dev/null 2>&1; }
dl=${SSD_COCO_DOWNLOADER:-}
if [[ -z "$dl" ]]; then
    if have curl; then dl=curl; elif have wget; then dl=wget; fi
fi
case "$dl" in
curl | wget) have "$dl" || die "SSD_COCO_DOWNLOADER=$dl but $dl is not installed" ;;
"") die "neither curl nor wget is installed (Debian: apt-get install curl)" ;;
*) die "SSD_COCO_DOWNLOADER must be curl or wget, not '$dl'" ;;
esac
if [[ "$dl" == wget && "$base" == file://* ]]; then
    die "wget cannot fetch file:// URLs ($base); install curl"
fi
ex=${SSD_COCO_EXTRACTOR:-}
if [[ -z "$ex" ]]; then
    if have unzip; then ex=unzip; elif have bsdtar; then ex=bsdtar; fi
fi
case "$ex" in
unzip | bsdtar) have "$ex" || die "SSD_COCO_EXTRACTOR=$ex but $ex is not installed" ;;
"") die "neither unzip nor bsdtar is installed" \
    "(Debian: apt-get install unzip, or libarchive-tools for bsdtar)" ;;
*) die "SSD_COCO_EXTRACTOR must be unzip or bsdtar, not '$ex'" ;;
esac
have md5sum || die "md5sum is not installed (Debian: coreutils)"

mkdir -p "$dir/.download/partial" || die "$dir: cannot create the download directory"
dir=$(cd "$dir" && pwd)
dl_dir=$dir/.download

# ---- 1+2: download and verify every needed zip ----
fetch() { # url dest (a progress bar on a terminal, errors only otherwise)
    if [[ "$dl" == curl ]]; then
        if [[ -t 2 ]]; then set -- "$1" "$2" --progress-bar; else set -- "$1" "$2" -sS; fi
        curl -fL --retry 3 -C - -o "$2" "${@:3}" "$1"
    else
        if [[ -t 2 ]]; then set -- "$1" "$2" -q --show-progress; else set -- "$1" "$2" -nv; fi
        wget -c --tries=3 -O "$2" "${@:3}" "$1"
    fi
}

for n in "${needed[@]}"; do
    zip=${path[$n]##*/}
    final=$dl_dir/$zip
    if [[ -f "$final" ]]; then
        say "$zip: verified earlier, in $final"
        continue
    fi
    part=$dl_dir/partial/$zip
    url=$base/${path[$n]}
    if [[ -s "$part" ]]; then
        say "$zip: resuming from $(stat -c %s "$part") bytes: $url"
    else
        say "$zip: downloading $url"
    fi
    if ! fetch "$url" "$part"; then
        [[ -s "$part" ]] || rm -f "$part"
        die "$zip: download from $url failed (run again to resume)"
    fi
    got=$(md5sum "$part" | cut -d' ' -f1)
    want=${md5[$n]}
    if [[ "$want" == skip ]]; then
        say "$zip: md5 $got (not checked: the expected md5 was set to 'skip')"
    elif [[ "$got" != "$want" ]]; then
        rm -f "$part"
        die "$zip: md5 $got, expected $want: the download is corrupt or not the COCO file;" \
            "deleted (run again to download it anew)"
    else
        say "$zip: md5 $got OK"
    fi
    mv -f "$part" "$final"
done
rmdir "$dl_dir/partial" 2>/dev/null || true

# ---- 3: extract everything into a temporary directory, check it, rename into place ----
tmp=$(mktemp -d "$dir/.extract.XXXXXX") || die "$dir: cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 130' INT TERM
for n in "${needed[@]}"; do
    zip=${path[$n]##*/}
    say "$zip: extracting"
    if [[ "$ex" == unzip ]]; then
        unzip -q "$dl_dir/$zip" -d "$tmp" || die "$zip: unzip failed (disk full or damaged zip?)"
    else
        bsdtar -xf "$dl_dir/$zip" -C "$tmp" || die "$zip: bsdtar failed (disk full or damaged zip?)"
    fi
    if ! present "$n" "$tmp"; then
        case "$n" in
        annotations) die "$zip: has no annotations/instances_train2017.json and" \
            "annotations/instances_val2017.json" ;;
        *) die "$zip: has no top-level directory $n/" ;;
        esac
    fi
done
for n in "${needed[@]}"; do
    if [[ "$n" == annotations ]]; then
        # DIR/annotations may exist without the instances files: move file by file, never
        # replacing what is there
        mkdir -p "$dir/annotations"
        for f in "$tmp"/annotations/*; do
            [[ -e "$dir/annotations/${f##*/}" ]] || mv "$f" "$dir/annotations/" ||
                die "$dir/annotations: cannot move ${f##*/} into place"
        done
    else
        mv "$tmp/$n" "$dir/$n" || die "$dir/$n: cannot move the extracted directory into place"
    fi
done
rm -rf "$tmp"
trap - EXIT INT TERM

# ---- 4: tidy up and report ----
if [[ $keep -eq 0 ]]; then
    for n in "${needed[@]}"; do rm -f "$dl_dir/${path[$n]##*/}"; done
    rmdir "$dl_dir" 2>/dev/null || true
fi
say "done"
finish
