"""Oracle for tests/train/test_mllog.c: every ':::MLLOG ' line of a log file, decoded with json
and encoded again by MLCommons' own mllog encoder (mlperf_logging.mllog.mllog._encode_log, the
function mllog.event()/start()/end() use), must give back the same text byte for byte: our C
emitter writes the same key order, spacing and escapes as the Python library.

usage: python mllog_reencode.py LOGFILE   (prints the lines that differ; exit 1 if any)"""
import json
import sys

from mlperf_logging.mllog import mllog

PREFIX = ":::MLLOG "


def main(path):
    bad = n = 0
    with open(path, encoding="ascii") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.startswith(PREFIX):
                print(f"{path}:{lineno}: no {PREFIX!r} prefix")
                bad += 1
                continue
            d = json.loads(line[len(PREFIX):])
            again = mllog._encode_log(d["namespace"], d["time_ms"], d["event_type"],
                                       d["key"], d["value"], d["metadata"])
            n += 1
            if again != line:
                print(f"{path}:{lineno}: ours   {line}\n{path}:{lineno}: mllog  {again}")
                bad += 1
    print(f"mllog_reencode: {n} lines, {bad} differ")
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
