"""Run every fuzz harness for a fixed time and record libFuzzer's final statistics (``make fuzz``).

Each target's work corpus is ``<work>/<target>/corpus`` (seeded from the committed ``corpus/<target>`` on
every run, and kept between runs); its log is ``<work>/<target>/fuzz.log`` and crashing inputs are written
beside it as ``crash-*``/``timeout-*``. The results (executions, exec/s, coverage, corpus size, crashes) go
to ``<work>/results.md`` and ``<work>/results.json``.

    python tests/fuzz/campaign.py [--seconds 1200] [--jobs 1] [--work build/fuzz] [target ...]
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ("y4m", "raw", "probe", "manifest", "serve", "metadata")
_STATS = re.compile(r"^#(\d+)\s+(DONE|INITED|NEW|REDUCE|pulse)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+).*?"
                    r"exec/s: (\d+)", re.MULTILINE)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_target(target: str, seconds: int, work: str, timeout: int) -> dict:
    folder = os.path.join(work, target)
    corpus = os.path.join(folder, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for seed in glob.glob(os.path.join(HERE, "corpus", target, "*")):
        shutil.copy(seed, corpus)
    log = os.path.join(folder, "fuzz.log")
    command = [sys.executable, os.path.join(HERE, f"fuzz_{target}.py"), f"-max_total_time={seconds}",
               f"-timeout={timeout}", "-print_final_stats=1", f"-artifact_prefix={folder}/", corpus]
    started = time.time()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)  # the fuzzer's own CPU time: the machine may be shared
        code = process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.time() - started
    with open(log, errors="replace") as handle:
        text = handle.read()
    stats = _STATS.findall(text)
    last = stats[-1] if stats else None
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    artifacts = sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*-*"))
                       if os.path.basename(p).split("-")[0] in ("crash", "timeout", "oom", "leak", "slow"))
    return {
        "target": target, "exit_code": code, "seconds": round(elapsed),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime),
        "executions": int(execs.group(1)) if execs else (int(last[0]) if last else None),
        "exec_per_s": round(int(execs.group(1)) / elapsed) if execs and elapsed else None,
        "cov": int(last[2]) if last else None, "ft": int(last[3]) if last else None,
        "corpus_files": len(os.listdir(corpus)), "corpus_bytes": sum(
            os.path.getsize(os.path.join(corpus, f)) for f in os.listdir(corpus)),
        "crashes": artifacts if code else [], "log": log,
    }


def write_results(results: list[dict], work: str, seconds: int) -> str:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Fuzz campaign of {when} on {cpu_model()}, {seconds} s per target", "",
             "| target | seconds | CPU seconds | executions | exec/s | cov | ft | corpus (files) | exit | crashes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['target']} | {r['seconds']} | {r['cpu_seconds']} | {r['executions']} | {r['exec_per_s']} | {r['cov']} | "
                     f"{r['ft']} | {r['corpus_files']} | {r['exit_code']} | {', '.join(r['crashes']) or 0} |")
    path = os.path.join(work, "results.md")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(work, "results.json"), "w") as handle:
        json.dump({"date": when, "cpu": cpu_model(), "seconds_per_target": seconds, "targets": results}, handle,
                  indent=2)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--seconds", type=int, default=1200, help="fuzzing time per target")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it is a hang")
    parser.add_argument("--work", default=os.path.join("build", "fuzz"))
    args = parser.parse_args()
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda t: run_target(t, args.seconds, args.work, args.timeout), args.targets))
    path = write_results(results, args.work, args.seconds)
    with open(path) as handle:
        sys.stdout.write(handle.read())
    return 1 if any(r["exit_code"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
