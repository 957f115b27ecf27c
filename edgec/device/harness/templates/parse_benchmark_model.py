#!/usr/bin/env python3
"""Parse TFLite benchmark_model output (one file per variant) into bench.json. Python stdlib only.

    python3 parse_benchmark_model.py --out bench.json int8=benchmark_int8.txt fp16-gpu=benchmark_fp16-gpu.txt

benchmark_model prints the timed run as "count=N first=.. curr=.. min=.. max=.. avg=.. std=..
[p5=.. median=.. p95=..]" (microseconds) after the warm-up's line of the same form, then
"Inference timings in us: ..." and "Memory footprint delta ... overall=X" or
"Overall peak memory footprint (MB) via periodic monitoring: X". It reports p5/median/p95, not
p90/p99; those stay null, with the reason, rather than being guessed.
"""

import argparse
import json
import re
import sys

STAT = re.compile(r"count=(\d+)(.*)$")
PAIR = re.compile(r"(\w+)=([-+\d.e]+)")
SUMMARY = re.compile(r"Inference timings in us: Init: ([\d.e+]+), First inference: ([\d.e+]+), "
                     r"Warmup \(avg\): ([\d.e+]+), Inference \(avg\): ([\d.e+]+)")
PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring: ([\d.e+]+)")
DELTA = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) "
                   r"\(MB\): init=([\d.e+]+) overall=([\d.e+]+)")
DELEGATE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\)")


def parse(text):
    """One benchmark_model output -> stats dict (ms); raises ValueError if it has no timed run."""
    stats = [dict(PAIR.findall(m.group(0))) for m in (STAT.search(line) for line in text.splitlines()) if m]
    summary = SUMMARY.search(text)
    if not stats or not summary:
        error = [line for line in text.splitlines() if "ERROR" in line or "rror" in line]
        raise ValueError(error[-1].strip() if error else "no 'Inference timings' line: the run failed")
    timed = stats[-1]  # the last count= line is the timed run; the one before is the warm-up

    def ms(key):
        return round(float(timed[key]) / 1e3, 4) if key in timed else None

    out = {"runs": int(timed["count"]), "p50_ms": ms("median"), "p95_ms": ms("p95"), "p5_ms": ms("p5"),
           "p90_ms": None, "p99_ms": None, "mean_ms": round(float(summary.group(4)) / 1e3, 4),
           "min_ms": ms("min"), "max_ms": ms("max"), "std_ms": ms("std"),
           "init_ms": round(float(summary.group(1)) / 1e3, 4),
           "first_inference_ms": round(float(summary.group(2)) / 1e3, 4),
           "null_reasons": {"p90_ms": "benchmark_model reports p5/median/p95 only",
                            "p99_ms": "benchmark_model reports p5/median/p95 only"}}
    if out["p50_ms"] is None:
        out["null_reasons"]["p50_ms"] = "this benchmark_model build prints no median"
    typical = out["p50_ms"] or out["mean_ms"]
    out["throughput_per_s"] = round(1e3 / typical, 2) if typical else None
    peak, delta = PEAK.search(text), DELTA.search(text)
    out["peak_memory_bytes"] = int(float(peak.group(1)) * 2**20) if peak else (
        int(float(delta.group(2)) * 2**20) if delta else None)
    delegated = DELEGATE.search(text)
    out["delegated_nodes"] = ("%s/%s %s" % delegated.groups()) if delegated else None
    return out


def main(argv=None):
    """Parse VARIANT=FILE pairs, write bench.json; the first variant is the artifact."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench.json")
    p.add_argument("--device", default=None)
    p.add_argument("--reference", default="float", help="variant timed as the float reference")
    p.add_argument("runs", nargs="+", metavar="VARIANT=FILE")
    args = p.parse_args(argv)
    variants = {}
    for item in args.runs:
        name, _, path = item.partition("=")
        try:
            with open(path) as f:
                variants[name] = parse(f.read())
        except (OSError, ValueError) as e:
            sys.stderr.write("error: %s (%s): %s\n" % (name, path, e))
            return 2
    first = next(iter(variants))
    ref = variants.get(args.reference)
    result = {"runtime": "benchmark_model", "device": args.device, "variants": variants,
              "artifact": variants[first], "reference": ref,
              "speedup": round(ref["p50_ms"] / variants[first]["p50_ms"], 3)
              if ref and ref["p50_ms"] and variants[first]["p50_ms"] else None}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
