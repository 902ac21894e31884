#!/usr/bin/env python3
"""Two configurations of mesh-host loaded at the same time on one core: a cost ratio that the
machine's drift cannot move.

`run.py` measures peers one after the other. On a shared VM the same configuration's 4 s
windows can differ by ±20 %, so a 5 % cost cannot be told from the drift between two windows.
Here both servers run pinned to the same CPU, in sessions of their own (with the kernel's
autogroup scheduling each session gets an equal share of the CPU whatever its thread count),
and two h2load processes on the other CPU saturate both for the same window. Whatever slows
the machine slows both alike; with equal CPU, the ratio of their req/s is the inverse ratio
of their CPU cost per request.

A control pair runs the reference configuration against a second copy of itself, in windows
interleaved with the test pair's: its ratio shows what the method reads when there is no
difference (ideally 1.00×) and how far single windows scatter. Each window also records the
CPU each server got, so an unequal share is visible rather than hidden in the ratio. One
server instance can run a percent or two faster than another copy of itself for as long as it
lives (where its memory landed), so the run is split into rounds, each with freshly started
servers, and the table shows each round's median beside the overall one.

    python3 benches/load/simultaneous.py --scenarios tracing,in-process \\
        --rounds 4 --windows 5 --duration 4 --output benches/load/RESULTS-simultaneous.md

Scenarios are run.py's (same bootstraps, same components, same h2load arguments):
  tracing     hello without tracing (reference) and with tracing at 1 % sampling exporting to
              the OTLP receiver (which runs on h2load's CPU: it stands for a remote collector)
  in-process  the component -> component call looped through the host's own listener
              (reference) and the same call in-process
  in-process-grpc  the same for a unary gRPC call (outbound.wasm -> greeter.wasm; looped over
              HTTP/2, as a gRPC upstream must be)
Needs the release build and components `run.py` uses (run it once, or build them).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the harness next to this file)


@dataclass
class Comparison:
    """A scenario of run.py (its peers, h2load arguments and reply checks), which of its peers
    is the reference and which the subject, and the target on their ratio."""

    key: str
    reference: str
    subject: str
    target: float
    target_text: str


COMPARISONS = {
    "tracing": Comparison("tracing", "tracing-off", "tracing-1pct", 0.95,
                          "req/s with tracing at 1 % sampling >= 0.95× without (issue #14)"),
    "in-process": Comparison("in-process", "loopback", "in-process", 2.0,
                             "req/s in-process >= 2× through the host's own listener (issue #11)"),
    "in-process-grpc": Comparison("in-process-grpc", "loopback", "in-process", 2.0,
                                  "gRPC req/s in-process >= 2× through the host's own listener (issue #11)"),
}

# These scenarios' peers use no wasmtime CLI and no Envoy.
NO_TOOLS = run.Tools(None, "not used", None, "not used")


def scenario(comparison: Comparison, work: Path) -> run.Scenario:
    """A fresh instance of run.py's scenario: its peers get new ports and files."""
    return run.build_scenarios(NO_TOOLS, work, [comparison.key])[0]


@dataclass
class Side:
    """One server's figures in one window."""

    rps: float
    cpu_seconds: float
    cpu_us_per_req: float


@dataclass
class PairResult:
    label: str
    reference: list[Side] = field(default_factory=list)
    other: list[Side] = field(default_factory=list)
    # The number of windows at the end of each round.
    rounds: list[int] = field(default_factory=list)

    def round_medians(self) -> list[float]:
        ratios = self.ratios()
        starts = [0] + self.rounds[:-1]
        return [statistics.median(ratios[a:b]) for a, b in zip(starts, self.rounds)]

    def ratios(self) -> list[float]:
        return [o.rps / r.rps for r, o in zip(self.reference, self.other)]

    def cpu_ratios(self) -> list[float]:
        return [o.cpu_us_per_req / r.cpu_us_per_req for r, o in zip(self.reference, self.other)]


def start_h2load(loaded: run.Scenario, peer: run.Peer, seconds: float, affinity: run.Affinity,
                 out: Path) -> subprocess.Popen:
    """Starts h2load on `peer` with run.py's command line for the scenario; does not wait."""
    argv = run.h2load_argv(loaded, peer, seconds, affinity, None)
    handle = open(out, "wb")
    try:
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=run.REPO)
    finally:
        handle.close()
    run.SUPERVISOR.live.append(proc)
    return proc


def window(loaded: run.Scenario, a: run.RunningPeer, b: run.RunningPeer, seconds: float,
           affinity: run.Affinity, work: Path) -> tuple[Side, Side]:
    """Loads `a` and `b` for the same `seconds`; each side's req/s and CPU."""
    pids = [a.pids(), b.pids()]
    outs = [work / f"h2load-{side}.out" for side in ("a", "b")]
    before = [run.cpu_seconds(p) for p in pids]
    procs = [start_h2load(loaded, peer.peer, seconds, affinity, out) for peer, out in zip((a, b), outs)]
    try:
        for proc in procs:
            proc.wait(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        raise run.BenchError(f"h2load did not finish within {seconds + 60:.0f}s") from None
    finally:
        for proc in procs:
            run.SUPERVISOR.stop(proc, grace=1.0)
    after = [run.cpu_seconds(p) for p in pids]
    sides = []
    for proc, out, start, end in zip(procs, outs, before, after):
        text = out.read_text(errors="replace")
        if proc.returncode != 0:
            raise run.BenchError(f"h2load exited with {proc.returncode}:\n{text[-2000:]}")
        rps, succeeded = run.parse_h2load(text)
        sides.append(Side(rps, end - start, (end - start) * 1e6 / succeeded))
    return sides[0], sides[1]


def run_round(comparison: Comparison, args, affinity: run.Affinity, work: Path, number: int,
              control: PairResult, test: PairResult) -> str:
    """Starts fresh servers of the three configurations, warms each pair up and adds
    `args.windows_per_round` windows to each pair; returns the scenario's title."""
    loaded = scenario(comparison, work)
    peers = {peer.key: peer for peer in loaded.peers}
    # A second, independent copy of the reference (own ports and files) for the control pair.
    twin = next(peer for peer in scenario(comparison, work).peers if peer.key == comparison.reference)
    twin.key, twin.label = f"{twin.key}-twin", f"{twin.label} (second copy)"
    reference, subject = peers[comparison.reference], peers[comparison.subject]
    control.label = f"control: {reference.label} vs a second copy of it"
    test.label = f"test: {subject.label} vs {reference.label}"
    running: dict[str, run.RunningPeer] = {}
    try:
        for peer in (reference, subject, twin):
            running[peer.key] = run.RunningPeer(peer, affinity, work)
            for check in loaded.checks:
                run.check_with_retry(check, peer.port)
        run.log(f"{comparison.key} round {number}: replies ok; warming up {args.warmup:g}s per pair")
        pairs = [(control, running[twin.key]), (test, running[subject.key])]
        for _, other in pairs:
            window(loaded, running[reference.key], other, args.warmup, affinity, work)
        for index in range(args.windows_per_round):
            # Alternate which pair goes first so neither always follows the other.
            order = pairs if index % 2 == 0 else list(reversed(pairs))
            for result, other in order:
                ref_side, other_side = window(loaded, running[reference.key], other, args.duration,
                                              affinity, work)
                result.reference.append(ref_side)
                result.other.append(other_side)
                run.log(f"  round {number} window {index + 1}/{args.windows_per_round} "
                        f"{result.label.split(':')[0]}: {other_side.rps:,.0f} / {ref_side.rps:,.0f} req/s = "
                        f"{other_side.rps / ref_side.rps:.3f}; "
                        f"CPU {other_side.cpu_seconds:.2f} / {ref_side.cpu_seconds:.2f} s")
        for result, _ in pairs:
            result.rounds.append(len(result.reference))
        for peer in (reference, subject, twin):
            for check in loaded.checks:
                check(peer.port)
        return loaded.title
    finally:
        for started in running.values():
            started.stop()


def run_comparison(comparison: Comparison, args, affinity: run.Affinity,
                   work: Path) -> tuple[str, PairResult, PairResult]:
    """Rounds of fresh processes: a server instance can be a percent or two faster than another
    copy of itself (where its memory landed), and new instances each round average that out."""
    control, test = PairResult("control"), PairResult("test")
    title = ""
    for number in range(1, args.rounds + 1):
        title = run_round(comparison, args, affinity, work, number, control, test)
    return title, control, test


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 4:
        med = statistics.median(values)
        return min(values), med, max(values)
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def table(title: str, comparison: Comparison, control: PairResult, test: PairResult) -> str:
    lines = [
        f"#### {title}",
        "",
        "| pair | req/s ratio: median (quartiles; min–max) | CPU µs/req ratio: median | req/s of each side: median "
        "| CPU seconds each side got per window: median | median of each round |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for result in (control, test):
        ratios = result.ratios()
        q1, q2, q3 = quartiles(ratios)
        lines.append(
            f"| {result.label} | {q2:.3f}× ({q1:.3f}–{q3:.3f}; {min(ratios):.3f}–{max(ratios):.3f}) "
            f"| {statistics.median(result.cpu_ratios()):.3f}× "
            f"| {statistics.median(s.rps for s in result.other):,.0f} / "
            f"{statistics.median(s.rps for s in result.reference):,.0f} "
            f"| {statistics.median(s.cpu_seconds for s in result.other):.2f} / "
            f"{statistics.median(s.cpu_seconds for s in result.reference):.2f} "
            f"| {', '.join(f'{m:.3f}' for m in result.round_medians())} |")
    measured = statistics.median(test.ratios())
    verdict = "met" if measured >= comparison.target else \
        f"missed: {measured:.3f}× of {comparison.target:g}× ({(1 - measured / comparison.target) * 100:.0f}% short)"
    lines += ["", f"Target: {comparison.target_text}: **{measured:.3f}×, {verdict}**.", ""]
    return "\n".join(lines)


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=",".join(COMPARISONS),
                        help=f"comma list of {','.join(COMPARISONS)}")
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds, each with freshly started servers (default 4)")
    parser.add_argument("--windows", type=int, default=5, help="measured windows per pair and round (default 5)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per window (default 4)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up per pair, seconds (default 3)")
    parser.add_argument("--output", type=Path, default=run.HERE / "RESULTS-simultaneous.md")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(COMPARISONS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {list(COMPARISONS)}")
    if args.windows < 1 or args.rounds < 1 or args.duration < 2:
        parser.error("--windows and --rounds must be at least 1 and --duration at least 2")
    args.windows_per_round = args.windows
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    run.install_cleanup()
    run.require_tools()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise run.BenchError("needs two CPUs: one for both servers, one for the load generators")
    affinity = run.Affinity(f"servers on CPU {cpus[0]}, h2load on CPU {cpus[1]}",
                            ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])])
    for binary in (run.RELEASE / "mesh-host", Path(run.component("hello")), Path(run.component("outbound"))):
        if not binary.exists():
            raise run.BenchError(f"{binary.relative_to(run.REPO)} is missing: build it "
                                 "(python3 benches/load/run.py builds everything it uses)")
    work = run.WORK_ROOT / f"simultaneous-{time.strftime('%Y%m%d-%H%M%S')}"
    work.mkdir(parents=True, exist_ok=True)
    note = run.machine_note()
    head = run.tool_version(["git", "-C", str(run.REPO), "rev-parse", "--short", "HEAD"])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sections, raw = [], {}
    for key in args.scenarios:
        comparison = COMPARISONS[key]
        title, control, test = run_comparison(comparison, args, affinity, work)
        section = table(title, comparison, control, test)
        print("\n" + section, flush=True)
        sections.append(section)
        raw[key] = {pair.label: {"reference": [vars(s) for s in pair.reference],
                                 "other": [vars(s) for s in pair.other]} for pair in (control, test)}
    header = "\n".join([
        "# mesh-host: two configurations loaded at the same time",
        "",
        f"Generated by `python3 benches/load/simultaneous.py {shlex.join(argv)}`".rstrip() + f" on {started}.",
        "",
        f"- Machine: {note}; load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}. "
        f"Loopback only. {affinity.name}; each server in its own session.",
        f"- {args.rounds} rounds, each with freshly started servers, of {args.windows} windows of "
        f"{args.duration:g} s per pair after a {args.warmup:g} s warm-up per pair; control and test windows "
        "alternate. In each window both servers of a pair are loaded at once; the ratio is the other side's "
        "req/s ÷ the reference's in that window. Medians and quartiles are over all windows of all rounds.",
        f"- mesh-host release binary of "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime((run.RELEASE / 'mesh-host').stat().st_mtime))} "
        f"(git HEAD {head} when the run started); {run.tool_version(['h2load', '--version'])}.",
        f"- Raw numbers and server logs: `{work.relative_to(run.REPO)}/`.",
        "",
    ])
    args.output.write_text(header + "\n" + "\n".join(sections))
    (work / "results.json").write_text(json.dumps(raw, indent=2))
    run.log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except run.BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; stopping every started process", file=sys.stderr)
        sys.exit(130)
    finally:
        run.SUPERVISOR.stop_all()
