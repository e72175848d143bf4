"""Several nodes as one service, measured: the authenticated read of the load benchmark
through a real HAProxy (TCP mode, PROXY protocol v2) in front of one node with its rate-limit
budgets in memory, one node with them in Redis, and three nodes sharing Redis, all on one
PostgreSQL database. Prints a Markdown section; with --write it replaces the section in
BENCHMARKS.md.

Usage: bench/nodes/run [--write] [--seconds N] [--rounds N]
"""

import argparse
import datetime
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench" / "load"))
sys.path.insert(0, str(ROOT / "bench"))
import load  # noqa: E402  (the load benchmark's process, wrk and fixture helpers)

ADMIN_URL = os.environ.get("NATTERJACK_BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NATTERJACK_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
HEADING = "## Several nodes behind HAProxy"
CASES = [
    ("one_memory", "one node, budgets in memory", 1, False),
    ("one_redis", "one node, budgets in Redis", 1, True),
    ("three_redis", "three nodes, budgets in Redis", 3, True),
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="replace the section in BENCHMARKS.md")
    p.add_argument("--seconds", type=int, default=10, help="measured seconds per case and round")
    p.add_argument("--rounds", type=int, default=2, help="rounds over all cases, alternating order")
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "natterjack"))
    return p.parse_args()


def psql(sql):
    subprocess.run(["psql", ADMIN_URL, "-qAtc", sql], check=True, capture_output=True)


class Database:
    """A fresh database and roles for this run, prepared by `natterjack db init` and
    `migrate`; dropped at the end."""

    def __init__(self, binary, data_dir):
        self.name = f"nj_bench_{os.getpid()}_{int(time.time())}"
        host = "127.0.0.1:5432"
        self.env = {
            "NATTERJACK_DATABASE__URL": f"postgres://{self.name}_app:app-{self.name}@{host}/{self.name}",
            "NATTERJACK_DATABASE__OWNER_URL": f"postgres://{self.name}_owner:owner-{self.name}@{host}/{self.name}",
            "NATTERJACK_DB_ADMIN_URL": ADMIN_URL,
        }
        env = {**load.clean_env(), **self.env, "NATTERJACK_DATA_DIR": str(data_dir)}
        for cmd in (["db", "init"], ["migrate"]):
            subprocess.run([binary, *cmd], env=env, check=True, capture_output=True)

    def drop(self):
        psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        psql(f"DROP ROLE IF EXISTS {self.name}_app")
        psql(f"DROP ROLE IF EXISTS {self.name}_owner")


def haproxy_config(front, backends):
    lines = [
        "global", "    maxconn 4096", "",
        "defaults", "    mode tcp", "    timeout connect 5s", "    timeout client 60s",
        "    timeout server 60s", "",
        "frontend natterjack", f"    bind 127.0.0.1:{front}", "    default_backend nodes", "",
        "backend nodes", "    balance roundrobin", "    option httpchk",
        "    http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost",
        "    http-check expect status 200",
        "    default-server check check-ssl verify none send-proxy-v2 check-send-proxy inter 1s",
    ]
    lines += [f"    server node{i} 127.0.0.1:{port}" for i, port in enumerate(backends)]
    return "\n".join(lines) + "\n"


def start_haproxy(tmp, backends, logdir):
    front = load.free_port()
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(haproxy_config(front, backends))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=open(logdir / "haproxy.log", "w"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            load.https_call(front, tmp / "ca.pem", "GET", "/health")
            return front, proc
        except (OSError, SystemExit):
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("haproxy did not answer within 10 s")


def node_env(db, shared_files, redis_prefix, behind_proxy=True):
    env = {**db.env, "NATTERJACK_GRPC__ENABLED": "false"}
    if behind_proxy:
        env["NATTERJACK_RATE_LIMIT__TRUSTED_PROXIES"] = "127.0.0.1/32"
        env["NATTERJACK_REST__PROXY_PROTOCOL"] = "true"
    if shared_files:
        env.update(shared_files)
    if redis_prefix:
        env["NATTERJACK_RATE_LIMIT__REDIS_URL"] = REDIS_URL
        env["NATTERJACK_RATE_LIMIT__REDIS_KEY_PREFIX"] = redis_prefix
    return env


def run_case(a, tmp, logdir, db, first_dir, shared, case, fixtures):
    key, _, count, redis = case
    prefix = f"natterjack-bench:{key}:{time.time_ns()}:" if redis else None
    nodes = []
    try:
        for i in range(count):
            data = first_dir if i == 0 else tmp / f"{key}-node{i}"
            if i > 0 and not data.exists():
                # A node joining a log that has records starts from an anchored head (its
                # own anchor then follows what it writes): the first node's, copied.
                data.mkdir(mode=0o700)
                anchor = data / "audit.head"
                anchor.write_bytes((first_dir / "audit.head").read_bytes())
                anchor.chmod(0o600)
            nodes.append(load.start_natterjack(a.binary, data, logdir, f"{key}-node{i}",
                                               node_env(db, shared, prefix)))
        front, haproxy = start_haproxy(tmp, [n.port for n in nodes], logdir)
        try:
            space, msg = fixtures
            auth = load.basic("alice", load.PASSWORD)
            path = f"/spaces/{space}/messages/{msg}"
            load.https_call(front, tmp / "ca.pem", "GET", path, headers={"Authorization": auth})
            load.wrk(front, path, 3, 2, 16, auth=auth)
            pids = [n.pid for n in nodes] + [haproxy.pid]
            cpu0 = sum(load.cpu_seconds(p) for p in pids)
            r = load.wrk(front, path, a.seconds, 2, 16, auth=auth)
            cpu = sum(load.cpu_seconds(p) for p in pids) - cpu0
            r["cpu_us_per_request"] = cpu * 1e6 / max(r["requests"], 1)
            load.log(f"{key}: {r['requests_per_s']:.0f}/s, p99 {r['p99_us']/1000:.2f} ms, errors {r['errors']}")
            return r
        finally:
            haproxy.send_signal(signal.SIGTERM)
            haproxy.wait(timeout=10)
    finally:
        for n in nodes:
            n.stop()


def main():
    a = parse_args()
    if not pathlib.Path(a.binary).exists():
        raise SystemExit(f"no release binary at {a.binary}: cargo build --release -p natterjack")
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        logdir = tmp / "logs"
        logdir.mkdir()
        first = tmp / "node0"
        db = Database(a.binary, first)
        try:
            # The first start writes the development CA, the certificate every node then
            # presents, and the keys every node shares; then the fixtures.
            boot = load.start_natterjack(a.binary, first, logdir, "boot",
                                        node_env(db, None, None, behind_proxy=False))
            fixtures = load.natterjack_fixtures(boot.port, first / "ca.pem")
            boot.stop()
            (tmp / "ca.pem").write_bytes((first / "ca.pem").read_bytes())
            shared = {
                "NATTERJACK_TLS__CERT": str(first / "server.pem"),
                "NATTERJACK_TLS__KEY": str(first / "server-key.pem"),
                "NATTERJACK_AUDIT__KEY_FILE": str(first / "audit.key"),
                "NATTERJACK_ENCRYPTION__KEY_FILE": str(first / "encryption.key"),
            }
            results = {c[0]: [] for c in CASES}
            for rnd in range(a.rounds):
                order = CASES if rnd % 2 == 0 else list(reversed(CASES))
                for case in order:
                    results[case[0]].append(run_case(a, tmp, logdir, db, first, shared, case, fixtures))
        finally:
            db.drop()
    section = render(a, results)
    print(section)
    if a.write:
        import benchmarks_md
        benchmarks_md.replace_section(HEADING, section, after="## Load (wrk) and memory")


def render(a, results):
    def mean(key, field):
        xs = [r[field] for r in results[key]]
        return sum(xs) / len(xs)

    base = mean("one_memory", "requests_per_s")
    rows = []
    for key, label, count, _ in CASES:
        rps = mean(key, "requests_per_s")
        rows.append(
            f"| {label} | {rps:.0f} | {mean(key, 'p50_us')/1000:.2f} ms | {mean(key, 'p99_us')/1000:.2f} ms "
            f"| {mean(key, 'cpu_us_per_request'):.0f} µs | {rps / base:.3f} |")
    errors = sum(r["errors"] for rs in results.values() for r in rs)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    return "\n".join([
        HEADING,
        "",
        f"Measured {datetime.date.today()} on {os.cpu_count()} cores ({cpu}), release build, one PostgreSQL",
        "database, Redis on the same machine. Command: `bench/nodes/run --write`.",
        "",
        "The authenticated read of the load benchmark (`GET /spaces/{id}/messages/{msgId}`, Basic,",
        f"warm verification cache; the same raised quotas) through HAProxy ({subprocess.run(['haproxy', '-v'], capture_output=True, text=True).stdout.split()[2]}, TCP mode, TLS passed",
        "through, `send-proxy-v2`, round-robin per connection, `/health` checks every second) with",
        f"wrk `-t2 -c16`: a 3 s warm-up, then {a.seconds} s measured, {a.rounds} rounds over the cases, the second",
        "in reverse order; means over the rounds. CPU per request counts every node and HAProxy, not",
        "Redis or PostgreSQL (system services here).",
        "",
        "| case | requests/s | p50 | p99 | CPU per request (nodes + HAProxy) | ratio to one node, budgets in memory |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"wrk's errors (socket errors, non-2xx answers, timeouts) over every case and round: {errors}.",
        "",
        "This machine has two cores, shared by wrk, HAProxy and every node: three nodes cannot serve",
        "more than one here, and the row shows what running three costs on the same cores (three",
        "processes, each with its own pools, caches and connections). On separate machines each",
        "node brings its own cores. The Redis rows pay one round trip per decision (three per",
        "authenticated request: the address decision, the login budgets' check, the per-principal",
        "limit); the micro-benchmark section gives a decision's cost alone.",
        "",
    ])


if __name__ == "__main__":
    main()
