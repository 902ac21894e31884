#!/usr/bin/env bash
# Callgrind profile of the request hot path (issue #7), one command:
#
#     bash benches/load/profile.sh               # build, then profile everything
#     bash benches/load/profile.sh --skip-build  # reuse the last profiling build
#
# For each scenario it starts a server under `valgrind --tool=callgrind` on
# 127.0.0.1, checks its reply, warms it up with h2load, zeroes the counters
# (`callgrind_control -z`), dumps an idle window (background cost: epoch
# ticker, timers), drives a fixed number of requests with h2load, dumps again
# and checks the reply once more. Instructions per request =
# (Ir of the load dump - idle Ir/s x load seconds) / requests. Per peer it
# writes the raw dumps, `callgrind_annotate` inclusive and exclusive summaries
# and `<peer>.breakdown.txt` (self cost by crate, source file and function,
# and call counts per request: malloc, syscalls, host calls, task polls...);
# `summary.md` holds the per-request table. benches/load/PROFILE.md is written
# from one such run.
#
# Scenarios (SCENARIOS, default "http1 h2c grpc"; append -jemalloc to any):
#   http1  hello.wasm vs plain-hyper   h2load --h1 -c8 -t1 -n N GET /
#   h2c    hello.wasm vs plain-hyper   h2load -c8 -m1 -t1 -n N GET /
#   grpc   greeter.wasm --grpc vs tonic-greeter, h2load -c8 -m1 -t1 -n N,
#          one framed helloworld.HelloRequest{name: "bench"}
#   p3-http1  hello_p3.wasm (wasi:http@0.3) vs plain-hyper, loaded as http1
#   tracing   hello.wasm behind run.py's tracing bootstrap, without tracing and
#             with OpenTelemetry at 1 % sampling exporting to tests/otlp/receiver.py
#             (run natively, not profiled), loaded as http1
#   in-process  outbound.wasm calling hello.wasm through the egress routes:
#             in-process, and looped through the host's own listener
#             (run.py's in-process bootstrap), loaded as http1 with 4 connections
#   in-process-grpc  outbound.wasm making the unary gRPC call SayHello to
#             greeter.wasm, in-process and looped (over HTTP/2) through the own
#             listener (run.py's in-process-grpc scenario), loaded as HTTP/1.1
#             POSTs with 4 connections
#   <s>-jemalloc  scenario <s> again, both peers with LD_PRELOAD=libjemalloc.so.2
# h2c and gRPC use -m1 (8 streams in flight), not run.py's -m32: every
# in-flight request holds one component instance, and the profiling build
# below has only 10 instance slots.
#
# What is built: the committed tree (git HEAD, not the working tree) is
# copied to $OUT/src and two profiling-only changes are applied there, both in
# mesh-host/src/runtime/engine.rs:
#  1. the pooling allocator gets 10 instance slots and one linear-memory slot
#     per instance (`max_instances: 1000 -> 10`, `total_memories(max_instances
#     * 4) -> total_memories(max_instances)`). Valgrind 3.19 maps at most
#     ~60 GiB and the default pool reserves ~4 GiB per memory slot x 4000
#     slots, so the unmodified binary fails under valgrind with "failed to
#     create memory pool mapping". Slot counts are only read at instantiation.
#  2. `EPOCH_TICK` 10 ms -> 250 ms. Every tick makes each running store take
#     an epoch-deadline callback and a fiber yield (`UpdateDeadline::Yield`).
#     Natively that is a few hundredths of a yield per request; valgrind runs
#     10-25x slower, so a 10 ms tick gave 0.75 yields per request (measured:
#     +0.4k Ir/request, under 1%). 250 ms keeps the rate near the native one.
# Compiled guest code and the per-request path are otherwise unchanged.
# Set EPOCH_TICK_MS=10 to profile with the shipped tick.
#
# Environment: REQUESTS (4000), WARMUP (500), IDLE (seconds, 10), SCENARIOS,
# OUT (target/profile/<timestamp>), PROFILE_TARGET_DIR (target/profile-build;
# seeded from target/release on first use so only workspace crates rebuild).
# Needs valgrind, h2load, curl, python3, cargo. Every process it starts is
# killed on exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQUESTS="${REQUESTS:-4000}"
WARMUP="${WARMUP:-500}"
IDLE="${IDLE:-10}"
SCENARIOS="${SCENARIOS:-http1 h2c grpc}"
OUT="${OUT:-$REPO/target/profile/$(date -u +%Y%m%d-%H%M%S)}"
PROFILE_TARGET_DIR="${PROFILE_TARGET_DIR:-$REPO/target/profile-build}"
SKIP_BUILD=0
for arg in "$@"; do
    case "$arg" in
        --skip-build) SKIP_BUILD=1 ;;
        -h|--help) sed -n '2,50p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
for tool in valgrind callgrind_control callgrind_annotate h2load curl python3 cargo git; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
mkdir -p "$OUT"
BIN="$PROFILE_TARGET_DIR/release"
log() { printf '[profile] %s\n' "$*" >&2; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# ---------------------------------------------------------------- build
if [ "$SKIP_BUILD" = 0 ]; then
    SRC="$OUT/src"
    rm -rf "$SRC" && mkdir -p "$SRC"
    git -C "$REPO" archive HEAD | tar -x -C "$SRC"
    git -C "$REPO" rev-parse HEAD >"$OUT/commit"
    engine="$SRC/mesh-host/src/runtime/engine.rs"
    grep -q 'max_instances: 1000,' "$engine" && grep -q 'total_memories(config.max_instances \* 4)' "$engine" || {
        echo "engine.rs no longer matches the profiling patch; update profile.sh" >&2; exit 1; }
    grep -q 'EPOCH_TICK: Duration = Duration::from_millis(10);' "$engine" || {
        echo "engine.rs EPOCH_TICK no longer matches the profiling patch; update profile.sh" >&2; exit 1; }
    sed -i 's/max_instances: 1000,/max_instances: 10,/; s/total_memories(config\.max_instances \* 4)/total_memories(config.max_instances)/' "$engine"
    sed -i "s/EPOCH_TICK: Duration = Duration::from_millis(10);/EPOCH_TICK: Duration = Duration::from_millis(${EPOCH_TICK_MS:-250});/" "$engine"
    if [ ! -d "$BIN" ] && [ -d "$REPO/target/release" ]; then
        log "seeding $PROFILE_TARGET_DIR from target/release"
        mkdir -p "$PROFILE_TARGET_DIR" && cp -a "$REPO/target/release" "$PROFILE_TARGET_DIR/"
    fi
    log "building the profiling binaries of $(cat "$OUT/commit") into $PROFILE_TARGET_DIR"
    (cd "$SRC" && CARGO_TARGET_DIR="$PROFILE_TARGET_DIR" nice -n 10 cargo build --release \
        -p mesh-host --bin mesh-host -p mesh-host-benches --bin plain-hyper --bin tonic-greeter) \
        >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" >&2; exit 1; }
    log "building the guest components"
    WASM_DIR="$(bash "$REPO/tests/components/build.sh" 2>"$OUT/build-components.log" | tail -1)"
else
    WASM_DIR="$REPO/tests/components/target/wasm32-wasip2/release"
fi
for file in "$BIN/mesh-host" "$BIN/plain-hyper" "$BIN/tonic-greeter" "$WASM_DIR/hello.wasm" "$WASM_DIR/greeter.wasm"; do
    [ -e "$file" ] || { echo "missing $file (run without --skip-build)" >&2; exit 1; }
done

# ---------------------------------------------------------------- helpers
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The http1 load's path (the in-process scenario names its target in the query) and its
# connections (in-process uses 4: each of its requests holds two instances, the caller's and
# the callee's, and the profiling build has 10 instance slots).
REQUEST_PATH=/
CONNECTIONS=8
GRPC_FILE="$OUT/grpc-hello-request.bin"
# gRPC frame: uncompressed, length 7, HelloRequest{name (field 1) = "bench"}.
printf '\x00\x00\x00\x00\x07\x0a\x05bench' >"$GRPC_FILE"

# What makes the outbound component's call a unary gRPC call (run.py's IN_PROCESS_GRPC_HEADERS).
GRPC_CALL_HEADERS=(-H 'x-target-method: POST' -H 'x-target-content-type: application/grpc'
    -H 'x-target-header-te: trailers')

# load_argv SCENARIO PORT COUNT -> the h2load command line (one word a line)
load_argv() {
    local scenario="$1" port="$2" count="$3"
    case "$scenario" in
        http1) printf '%s\n' h2load --h1 "-c$CONNECTIONS" -t1 -n "$count" "http://127.0.0.1:$port$REQUEST_PATH" ;;
        h2c) printf '%s\n' h2load -c8 -m1 -t1 -n "$count" "http://127.0.0.1:$port/" ;;
        grpc) printf '%s\n' h2load -c8 -m1 -t1 -n "$count" -H 'content-type: application/grpc' \
            -H 'te: trailers' -d "$GRPC_FILE" "http://127.0.0.1:$port/helloworld.Greeter/SayHello" ;;
        grpc-call) printf '%s\n' h2load --h1 "-c$CONNECTIONS" -t1 -n "$count" -d "$GRPC_FILE" "${GRPC_CALL_HEADERS[@]}" \
            "http://127.0.0.1:$port$REQUEST_PATH" ;;
    esac
}

# run_load SCENARIO PORT COUNT LOGFILE: h2load, failing unless every request got a 2xx.
run_load() {
    local argv=()
    mapfile -t argv < <(load_argv "$1" "$2" "$3")
    "${argv[@]}" >"$4" 2>&1 || { cat "$4" >&2; return 1; }
    grep -q "requests: $3 total, $3 started, $3 done, $3 succeeded, 0 failed, 0 errored" "$4" &&
        grep -q "status codes: $3 2xx" "$4" || { echo "h2load: not every request succeeded:" >&2; cat "$4" >&2; return 1; }
}

# check_reply SCENARIO PORT: the exact reply (h2load counts any 2xx).
check_reply() {
    local scenario="$1" port="$2" body
    case "$scenario" in
        http1) body="$(curl -sS --max-time 60 "http://127.0.0.1:$port$REQUEST_PATH")" ;;
        h2c) body="$(curl -sS --max-time 60 --http2-prior-knowledge "http://127.0.0.1:$port/")" ;;
        grpc)
            body="$(curl -sS --max-time 60 --http2-prior-knowledge -i -H 'content-type: application/grpc' \
                -H 'te: trailers' --data-binary @"$GRPC_FILE" "http://127.0.0.1:$port/helloworld.Greeter/SayHello" | tr -d '\r' | tr '\0' '.')"
            grep -Eq 'grpc-status: 0([^0-9]|$)' <<<"$body" && grep -q 'Hello bench' <<<"$body" ||
                { echo "gRPC reply wrong: $body" >&2; return 1; }
            return 0 ;;
        grpc-call)
            body="$(curl -sS --max-time 60 -i "${GRPC_CALL_HEADERS[@]}" --data-binary @"$GRPC_FILE" \
                "http://127.0.0.1:$port$REQUEST_PATH" | tr -d '\r' | tr '\0' '.')"
            grep -q '^x-upstream-status: 200$' <<<"$body" && grep -q 'Hello bench' <<<"$body" ||
                { echo "gRPC call reply wrong: $body" >&2; return 1; }
            return 0 ;;
    esac
    [ "$body" = "Hello from mesh-host!" ] || { echo "reply wrong: $body" >&2; return 1; }
}

wait_ready() {
    local scenario="$1" port="$2" pid="$3" deadline=$((SECONDS + 300))
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$pid" 2>/dev/null || { echo "server exited early" >&2; return 1; }
        check_reply "$scenario" "$port" 2>/dev/null && return 0
        sleep 1
    done
    echo "server not ready after 300 s" >&2
    return 1
}

summary_ir() { awk '/^summary:/ {print $2}' "$1"; }

# analyze DUMP REQUESTS: self cost by crate and source file, and call counts,
# per request. Reads the callgrind file directly: every cost line is charged
# to its (object, source file incl. inlined file, function), so the rows add up
# exactly to the total. (callgrind_annotate's listing charges the inclusive
# cost of some frames that were suspended on wasmtime fiber stacks to them as
# self cost, e.g. `<Box<F> as FnOnce>::call_once` at ~48%; it is written out
# too, but not used for the breakdown.)
analyze() {
    python3 - "$1" "$2" <<'PYEOF'
import collections, re, sys
dump, requests = sys.argv[1], int(sys.argv[2])
tables = {"fl": {}, "fn": {}, "ob": {}}
kind = {"fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl", "fn": "fn", "cfn": "fn", "ob": "ob", "cob": "ob"}
def name(key, spec):
    m = re.match(r"\((\d+)\)(?:\s+(.*))?", spec)
    if not m:
        return spec
    table = tables[kind[key]]
    if m.group(2):
        table[m.group(1)] = m.group(2)
    return table.get(m.group(1), spec)
self_cost = collections.Counter()
calls = collections.Counter()
ob = fl = file = fn = callee = None
after_call = False
total = 0
for line in open(dump, errors="replace"):
    head = line[:1]
    if head.isdigit() or head in "+-*":
        parts = line.split()
        if len(parts) >= 2:
            if after_call:
                after_call = False
            else:
                cost = int(parts[1])
                self_cost[(ob, file, fn)] += cost
                total += cost
        continue
    key, _, value = line.rstrip("\n").partition("=")
    if key not in kind and key != "calls":
        continue
    if key == "calls":
        calls[callee] += int(value.split()[0])
        after_call = True
        continue
    value = name(key, value.strip())
    if key == "ob":
        ob = value
    elif key == "fl":
        fl = file = value
    elif key in ("fi", "fe"):
        file = value
    elif key == "fn":
        fn, file = value, fl
    elif key == "cfn":
        callee = value
def symbol_crate(function):
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", function.lstrip("<&*").replace("dyn ", "").replace("mut ", ""))
    return m.group(1).replace("_", "-") if m else "other"
crates, files, functions = collections.Counter(), collections.Counter(), collections.Counter()
for (obj, path, function), cost in self_cost.items():
    obj, path, function = obj or "", path or "", function or ""
    if obj in ("???", "") and (path == "???" or function.startswith("0x")):
        crate = "JIT code (guest wasm, trampolines)"
    elif "/malloc/" in path:
        crate = "allocator (glibc malloc/free)"
    elif "jemalloc" in obj:
        crate = "allocator (jemalloc)"
    elif re.search(r"mem(move|cpy|set|cmp)", path):
        crate = "libc memcpy/memset"
    elif obj.startswith(("/usr/lib", "/lib")):
        crate = "libc other"
    else:
        reg = re.search(r"/registry/src/[^/]+/([A-Za-z0-9_\-]+?)-\d+\.\d+\.\d+[^/]*/(.*)", path)
        if reg:
            crate, where = reg.group(1), reg.group(2)
        elif "/mesh-host/src/" in path:
            crate, where = "mesh-host", path.split("/mesh-host/src/", 1)[1]
        else:
            # std/core/alloc code inlined into a function: charge the function's crate.
            crate, where = symbol_crate(function), "(std code inlined)"
        crate = re.sub(r"^wasmtime-internal-.*|^wasmtime-environ$", "wasmtime", crate)
        crate = {"wasmtime-wasi-io": "wasmtime-wasi", "mesh-host-benches": "plain-hyper/tonic"}.get(crate, crate)
        files[f"{crate}: {where}"] += cost
    crates[crate] += cost
    functions[function] += cost
print(f"# {dump}: {total:,} Ir, {total / requests:,.0f} Ir/request (before idle subtraction)\n")
print("## self cost by crate (std/core/alloc code charged to the calling crate)")
for crate, cost in crates.most_common(20):
    print(f"{cost / requests:9,.0f} Ir/req {100 * cost / total:5.1f}%  {crate}")
print("\n## self cost by crate and source file")
for where, cost in files.most_common(30):
    print(f"{cost / requests:9,.0f} Ir/req {100 * cost / total:5.1f}%  {where}")
print("\n## self cost by function (all inlined code included)")
for function, cost in functions.most_common(30):
    print(f"{cost / requests:9,.0f} Ir/req {100 * cost / total:5.1f}%  {function[:160]}")
print("\n## calls per request")
# mesh-host links jemalloc (tikv-jemallocator, `_rjem_` symbols); the peers
# use glibc's malloc. Allocation functions carry their callers after a `'`.
ALLOC = r"^(malloc|calloc|realloc|_rjem_malloc|_rjem_mallocx|_rjem_calloc|_rjem_rallocx|_rjem_realloc)('|$)"
wanted = [("malloc", ALLOC),
          ("free", r"^(free|_rjem_free|_rjem_sdallocx)$"), ("memcpy", r"^__memcpy_avx_unaligned_erms$"),
          ("recv (syscall)", r"^recv$"), ("writev (syscall)", r"^writev$"), ("epoll_wait (syscall)", r"^epoll_wait$"),
          ("futex via syscall()", r"^syscall$"), ("clock_gettime (vDSO)", r"^clock_gettime"),
          ("tokio task polls (Harness::poll)", r"^tokio::runtime::task::harness::Harness<T,S>::poll$"),
          ("tokio schedule (local + remote)", r"^tokio::runtime::task::raw::schedule$"),
          ("wasm->host calls (HostFn::entrypoint)", r"^wasmtime::runtime::component::func::host::HostFn::entrypoint$"),
          ("component host tasks created", r"host_task_create$"),
          ("guest calls (Func::call_unchecked_raw)", r"^wasmtime::runtime::func::Func::call_unchecked_raw$"),
          ("epoch deadline callbacks", r"new_epoch_updated_deadline$"),
          ("instantiations (Store::new)", r"^wasmtime::runtime::store::Store<T>::new$"),
          ("tokio mpsc channels created", r"^tokio::sync::mpsc::bounded::channel$")]
for label, pattern in wanted:
    n = sum(v for k, v in calls.items() if k and re.search(pattern, k))
    print(f"{n / requests:8.2f}  {label}")
# The first caller that is not allocator, std/core/alloc or collection code
# is the one that asked for the allocation.
generic = re.compile(r"^<?(_rjem_|__rust_|__rdl|__rg_|malloc|calloc|realloc|alloc::|core::|std::|tikv_jemallocator|"
                     r"hashbrown|smallvec|\[|&|T as alloc)")
askers, asking_crates = collections.Counter(), collections.Counter()
for callee, n in calls.items():
    if not callee or not re.search(ALLOC, callee):
        continue
    frames = callee.split("'")[1:]
    asker = next((f for f in frames if not generic.match(f.lstrip("<&*"))), frames[-1] if frames else callee)
    askers[asker[:150]] += n
    asking_crates[symbol_crate(asker)] += n
print("\n## allocations per request by the crate that asked")
for crate, n in asking_crates.most_common(15):
    print(f"{n / requests:8.2f}  {crate}")
print("\n## allocations per request by the function that asked")
for asker, n in askers.most_common(30):
    print(f"{n / requests:8.2f}  {asker}")
PYEOF
}

# profile LABEL PEER LOAD ARGV... (ARGV may contain PORT). LOAD is http1, h2c
# or grpc; $PRELOAD, if set, is put in the server's LD_PRELOAD.
profile() {
    local label="$1" peer="$2" scenario="$3"; shift 3
    local name="$label-$peer" port argv=() cg="$OUT/$label-$peer.callgrind" env=()
    [ -n "${PRELOAD:-}" ] && env=(env "LD_PRELOAD=$PRELOAD")
    port="$(free_port)"
    local bootstrap="$OUT/$name.bootstrap.json"
    [ -n "${BOOTSTRAP:-}" ] && write_bootstrap "$BOOTSTRAP" "$port" >"$bootstrap"
    for word in "$@"; do word="${word//PORT/$port}"; argv+=("${word//BOOTSTRAP_FILE/$bootstrap}"); done
    log "$name: ${argv[*]}"
    # A bootstrap's components are compiled natively first, so valgrind loads them from the cache.
    if [ -n "${BOOTSTRAP:-}" ]; then
        "${argv[@]}" >"$OUT/$name.warm.log" 2>&1 &
        local warm=$!
        PIDS+=("$warm")
        wait_ready "$scenario" "$port" "$warm" || { tail -20 "$OUT/$name.warm.log" >&2; return 1; }
        kill -TERM "$warm"; wait "$warm" 2>/dev/null || true
    fi
    printf '%s\n' "${env[*]} valgrind --tool=callgrind ${argv[*]}" >"$OUT/$name.cmd"
    # Each allocation keeps the chain of its callers, so the breakdown can say
    # which crate asked for it (the contexts do not change the counts).
    local callers=()
    for fn in malloc calloc realloc _rjem_malloc _rjem_mallocx _rjem_calloc _rjem_rallocx _rjem_realloc; do
        callers+=("--separate-callers12=$fn")
    done
    "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$cg" "${callers[@]}" "${argv[@]}" >"$OUT/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_ready "$scenario" "$port" "$pid" || { tail -20 "$OUT/$name.log" >&2; return 1; }
    run_load "$scenario" "$port" "$WARMUP" "$OUT/$name.warmup.h2load"
    callgrind_control -z "$pid" >/dev/null 2>&1
    sleep "$IDLE"
    callgrind_control -d idle "$pid" >/dev/null 2>&1
    local start end
    start="$(date +%s.%N)"
    run_load "$scenario" "$port" "$REQUESTS" "$OUT/$name.h2load"
    end="$(date +%s.%N)"
    callgrind_control -d load "$pid" >/dev/null 2>&1
    check_reply "$scenario" "$port"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Dumps: $cg.1 = idle window, $cg.2 = load window ($cg = the rest, at exit).
    local idle_ir load_ir
    idle_ir="$(summary_ir "$cg.1")"
    load_ir="$(summary_ir "$cg.2")"
    python3 - "$peer" "$label" "$idle_ir" "$IDLE" "$load_ir" "$start" "$end" "$REQUESTS" >>"$OUT/results.tsv" <<'EOF'
import sys
name, scenario, idle_ir, idle_s, load_ir, start, end, n = sys.argv[1:]
secs = float(end) - float(start)
background = int(idle_ir) / float(idle_s) * secs
net = int(load_ir) - background
print(f"{scenario}\t{name}\t{n}\t{int(load_ir)}\t{secs:.1f}\t{int(idle_ir) / float(idle_s):.0f}\t{net / int(n):.0f}")
EOF
    callgrind_annotate --inclusive=yes --threshold=99.5 --auto=no "$cg.2" >"$OUT/$name.inclusive.txt" 2>/dev/null
    callgrind_annotate --inclusive=no --threshold=99.5 --auto=no "$cg.2" >"$OUT/$name.exclusive.txt" 2>/dev/null
    analyze "$cg.2" "$REQUESTS" >"$OUT/$name.breakdown.txt"
    log "$name: $(tail -1 "$OUT/results.tsv" | cut -f7) Ir/request"
}

# write_bootstrap KIND PORT: run.py's bootstrap of that kind for a listener on PORT
# (tracing-off, tracing-1pct exporting to $OTEL_PORT, in-process, in-process-grpc).
write_bootstrap() {
    python3 - "$REPO/benches/load" "$1" "$2" "${OTEL_PORT:-0}" <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
import run
kind, port, otel = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bootstrap = {
    "tracing-off": lambda: run.tracing_bootstrap(port, None),
    "tracing-1pct": lambda: run.tracing_bootstrap(port, otel),
    "in-process": lambda: run.in_process_bootstrap(port),
    "in-process-grpc": lambda: run.in_process_bootstrap(port, "greeter", http2=True),
}[kind]()
print(json.dumps(bootstrap, indent=2))
EOF
}

# Warm the compilation cache natively, so the profiled processes load compiled
# code instead of compiling under valgrind.
warm_cache() {
    local port pid extra=()
    port="$(free_port)"
    [ "$1" = greeter ] && extra=(--grpc)
    "$BIN/mesh-host" run "$WASM_DIR/$1.wasm" "${extra[@]}" --listen "127.0.0.1:$port" \
        --cache-dir "$OUT/cache" >"$OUT/warm-$1.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ready "$2" "$port" "$pid"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- run
printf 'scenario\tpeer\trequests\tload_Ir\tload_s\tidle_Ir_per_s\tIr_per_request\n' >"$OUT/results.tsv"
MESH=("$BIN/mesh-host" run --listen 127.0.0.1:PORT --request-timeout 30s --max-instance-reuse 1024 --cache-dir "$OUT/cache")
BOOT=("$BIN/mesh-host" run --bootstrap BOOTSTRAP_FILE --request-timeout 30s --max-instance-reuse 1024 --cache-dir "$OUT/cache")
JEMALLOC="${JEMALLOC:-/lib/x86_64-linux-gnu/libjemalloc.so.2}"
for scenario in $SCENARIOS; do
    # "<scenario>-jemalloc": the same binaries with jemalloc in LD_PRELOAD
    # (apt package libjemalloc2), to see what another allocator would save.
    base="${scenario%-jemalloc}"
    PRELOAD=""
    if [ "$base" != "$scenario" ]; then
        [ -e "$JEMALLOC" ] || { echo "no $JEMALLOC (apt-get install libjemalloc2)" >&2; exit 2; }
        PRELOAD="$JEMALLOC"
    fi
    case "$base" in
        http1|h2c)
            warm_cache hello "$base"
            profile "$scenario" mesh-host "$base" "${MESH[@]}" "$WASM_DIR/hello.wasm"
            profile "$scenario" plain-hyper "$base" "$BIN/plain-hyper" --listen 127.0.0.1:PORT ;;
        p3-http1)
            warm_cache hello_p3 http1
            profile "$scenario" mesh-host http1 "${MESH[@]}" "$WASM_DIR/hello_p3.wasm"
            profile "$scenario" plain-hyper http1 "$BIN/plain-hyper" --listen 127.0.0.1:PORT ;;
        grpc)
            warm_cache greeter grpc
            profile "$scenario" mesh-host grpc "${MESH[@]}" --grpc "$WASM_DIR/greeter.wasm"
            profile "$scenario" tonic grpc "$BIN/tonic-greeter" --listen 127.0.0.1:PORT ;;
        tracing)
            OTEL_PORT="$(free_port)"
            python3 "$REPO/tests/otlp/receiver.py" --port "$OTEL_PORT" --out "$OUT/spans.jsonl" >"$OUT/receiver.log" 2>&1 &
            PIDS+=("$!")
            BOOTSTRAP=tracing-off profile "$scenario" tracing-off http1 "${BOOT[@]}" --workload "hello=$WASM_DIR/hello.wasm"
            BOOTSTRAP=tracing-1pct profile "$scenario" tracing-1pct http1 "${BOOT[@]}" --workload "hello=$WASM_DIR/hello.wasm"
            [ -s "$OUT/spans.jsonl" ] || { echo "the OTLP receiver got no spans" >&2; exit 1; } ;;
        in-process)
            for target in mesh loop; do
                REQUEST_PATH="/?url=http%3A%2F%2Fhello.$target%2F" BOOTSTRAP=in-process CONNECTIONS=4 \
                    profile "$scenario" "hello.$target" http1 "${BOOT[@]}" --workload "client=$WASM_DIR/outbound.wasm" \
                    --workload "hello=$WASM_DIR/hello.wasm" --egress-allow "hello.$target"
            done ;;
        in-process-grpc)
            for target in mesh loop; do
                REQUEST_PATH="/?url=http%3A%2F%2Fgreeter.$target%2Fhelloworld.Greeter%2FSayHello" \
                    BOOTSTRAP=in-process-grpc CONNECTIONS=4 \
                    profile "$scenario" "greeter.$target" grpc-call "${BOOT[@]}" --workload "client=$WASM_DIR/outbound.wasm" \
                    --workload "greeter=$WASM_DIR/greeter.wasm" --grpc --grpc-outbound --egress-allow "greeter.$target"
            done ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
done

python3 - "$OUT/results.tsv" >"$OUT/summary.md" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| scenario | peer | requests | load Ir | load s | idle Ir/s | Ir/request |")
print("|---|---|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['scenario']} | {r['peer']} | {r['requests']} | {int(r['load_Ir']):,} | {r['load_s']} "
          f"| {int(r['idle_Ir_per_s']):,} | {int(r['Ir_per_request']):,} |")
by = {(r["scenario"], r["peer"]): int(r["Ir_per_request"]) for r in rows}
print()
for (scenario, peer), ir in by.items():
    if peer != "mesh-host" and (scenario, "mesh-host") in by:
        print(f"- {scenario}: mesh-host / {peer} = {by[(scenario, 'mesh-host')] / ir:.2f}x instructions per request")
EOF
cat "$OUT/summary.md"
log "results in $OUT"
