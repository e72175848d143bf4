#!/usr/bin/env python3
"""Runs sqlmap against every operation of the OpenAPI document (scripts/verify, check `sqlmap`).

Usage: sqlmap.py --base URL --ca FILE --cred USER:PASSWORD --sqlmap PATH --out DIR
                 --space ID --message ID --doomed-message ID --member NAME
                 [--level N] [--risk N] [--jobs N] [--operations REGEX]

Every path parameter and query parameter gets sqlmap's `*` injection marker after a valid
value, and every field of a JSON body is tested as sqlmap's `JSON name` parameter (`--data`
with `--method`), with Basic credentials of an admin who owns space ID, which holds message ID
and message ID `--doomed-message` (the one the DELETE operation removes), and where NAME holds
`r`. A field or parameter that appears in the document without a sample value below gets a
FAIL line (`sqlmap.plan`), so a new one cannot go untested.

The DELETE operations go on past the 404s once their row is gone (`--ignore-code 404`); the
revocation of a member is preceded by a re-grant (`--safe-req`, `--safe-freq 1`), so each of
its requests finds the permission and a true condition could be told from a false one. The
message deleted is one of its own: after the first request, sqlmap's boolean tests compare
two 404s there, and its error-, time-, UNION- and stacked-query tests still apply.

One line per operation: PASS when sqlmap tested every parameter it was given, its first
request (the valid one) was answered with the operation's success status, and it found
nothing injectable; FAIL otherwise. Exit status 1 when any line fails.
"""

import argparse
import base64
import concurrent.futures
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter

# Valid values, by parameter or field name. `{space}` and the like are filled in from the
# command line; ids must name rows that exist so the first request succeeds.
PATH_SAMPLES = {"id": "{space}", "msgId": "{message}", "username": "{member}"}
QUERY_SAMPLES = {
    "since": "2020-01-01T00:00:00Z",
    "until": "2099-01-01T00:00:00Z",
    "principal": "{admin}",
    "limit": "10",
    "after": "{after}",
    "permissions": "r",
}
BODY_SAMPLES = {
    ("NewSpace", "name"): "sqlmap",
    ("NewSpace", "owner"): "{admin}",
    ("NewMessage", "message"): "hello from sqlmap",
    ("NewGrant", "username"): "{member}",
    ("NewGrant", "permissions"): "r",
    ("NewUser", "username"): "sqlmapprobe",
    ("NewUser", "password"): "violet-anvil-73-harbour",
}

FOUND = [
    re.compile(r"identified the following injection point"),
    re.compile(r"parameter '[^']+' is '[^']+' injectable"),
    re.compile(r"parameter '[^']+' is vulnerable"),
    re.compile(r"resumed the following injection point"),
]
# The place is URI, GET, POST or, for markers in the URL of another method, that method.
NOT_INJECTABLE = re.compile(r"(?:\(custom\) )?[A-Z]+ parameter '([^']+)' does not seem to be injectable")
ALL_CLEAR = "all tested parameters do not appear to be injectable"
# One exchange of sqlmap's traffic file (-t): the request's method, then the response status.
EXCHANGE = re.compile(r"^HTTP request \[#\d+\]:\r?\n([A-Z]+) .*?^HTTP response \[#\d+\] \((\d{3})", re.M | re.S)


def fill(template, values):
    return template.format(**values)


def plan(doc, values):
    """The sqlmap targets: (label, method, url, body or None, expected params, success status)."""
    targets, problems = [], []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            label = f"{method.upper()} {path}"
            url, markers, query = path, 0, []
            for p in op.get("parameters", []):
                name = p["name"]
                if p["in"] == "path":
                    if name not in PATH_SAMPLES:
                        problems.append(f"{label}: no sample value for path parameter {name}")
                        continue
                    url = url.replace("{%s}" % name, fill(PATH_SAMPLES[name], values) + "*")
                    markers += 1
                elif p["in"] == "query":
                    if name not in QUERY_SAMPLES:
                        problems.append(f"{label}: no sample value for query parameter {name}")
                        continue
                    query.append(f"{name}={fill(QUERY_SAMPLES[name], values)}*")
                    markers += 1
                else:
                    problems.append(f"{label}: parameter {name} in {p['in']} is not handled")
            if query:
                url += "?" + "&".join(query)
            body, fields = None, []
            rb = op.get("requestBody")
            if rb:
                schema = rb["content"]["application/json"]["schema"]
                schema_name = schema["$ref"].rsplit("/", 1)[-1]
                body = {}
                for field in doc["components"]["schemas"][schema_name]["properties"]:
                    if (schema_name, field) not in BODY_SAMPLES:
                        problems.append(f"{label}: no sample value for field {schema_name}.{field}")
                        continue
                    body[field] = fill(BODY_SAMPLES[(schema_name, field)], values)
                    fields.append(field)
            success = min(int(s) for s in op["responses"] if s.startswith("2"))
            if markers == 0 and not fields:
                targets.append((label, method.upper(), None, None, None, success))
                continue
            expected = markers + len(fields)
            targets.append((label, method.upper(), values["base"] + url, body, (expected, fields), success))
    return targets, problems


def run_one(target, args, values):
    label, method, url, body, (expected, fields), success = target
    slug = re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
    out = os.path.join(args.out, slug)
    os.makedirs(out, exist_ok=True)
    traffic = os.path.join(out, "traffic.txt")
    cmd = [args.sqlmap, "-u", url, "--method", method,
           "--auth-type", "Basic", "--auth-cred", args.cred,
           "--batch", "--level", str(args.level), "--risk", str(args.risk),
           "--flush-session", "--skip-waf", "--disable-coloring",
           "--output-dir", os.path.join(out, "session"), "-t", traffic]
    if body is not None:
        cmd += ["--data", json.dumps(body)]
    if method == "DELETE":
        # The row is gone after the first request: sqlmap must go on past the 404s.
        cmd += ["--ignore-code", "404"]
    if method == "DELETE" and "{username}" in label:
        # Re-grant before every request, so each revocation finds the permission (204) and a
        # true condition could be told from a false one (404).
        user, password = args.cred.split(":", 1)
        auth = base64.b64encode(args.cred.encode()).decode()
        grant = json.dumps({"username": values["member"], "permissions": "r"})
        safe = os.path.join(out, "regrant.txt")
        # Addressed to `localhost` (the certificate covers it): sqlmap forces its `--method`
        # on any request to the target's own host name, and this one must stay a POST.
        base = values["base"].replace("://127.0.0.1:", "://localhost:")
        with open(safe, "w") as f:
            f.write(f"POST {base}/spaces/{values['space']}/members HTTP/1.1\r\n"
                    f"Host: {base.split('://', 1)[1]}\r\n"
                    f"Authorization: Basic {auth}\r\n"
                    f"Content-Type: application/json\r\n\r\n{grant}")
        cmd += ["--safe-req", safe, "--safe-freq", "1"]
    started = time.monotonic()
    with open(os.path.join(out, "sqlmap.log"), "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    elapsed = time.monotonic() - started
    text = open(os.path.join(out, "sqlmap.log"), errors="replace").read()
    try:
        exchanges = EXCHANGE.findall(open(traffic, errors="replace").read())
        # Only the operation's own requests: not the re-grants (--safe-req).
        statuses = [status for m, status in exchanges if m == method]
    except OSError:
        exchanges, statuses = [], []
    problems = []
    if rc != 0:
        problems.append(f"sqlmap exited with {rc}")
    found = [m.group(0) for rx in FOUND for m in rx.finditer(text)]
    if found:
        problems.append("INJECTABLE: " + "; ".join(sorted(set(found))))
    tested = NOT_INJECTABLE.findall(text)
    if len(tested) != expected:
        problems.append(f"sqlmap reported {len(tested)} of the {expected} parameters as tested ({tested})")
    missing = [f for f in fields if f"JSON {f}" not in tested]
    if missing:
        problems.append(f"JSON fields not tested: {missing}")
    if ALL_CLEAR not in text:
        problems.append(f"no '{ALL_CLEAR}' verdict")
    if not statuses or int(statuses[0]) != success:
        problems.append(f"the valid request got {statuses[0] if statuses else 'no response'}, "
                        f"not {success}: the fixtures or the credentials are wrong")
    counts = Counter(statuses)
    summary = ", ".join(f"{s}x{n}" for s, n in sorted(counts.items()))
    if len(exchanges) > len(statuses):
        summary += f"; {len(exchanges) - len(statuses)} re-grants between them"
    if problems:
        return False, f"{'; '.join(problems)} (log: {out}/sqlmap.log)"
    return True, (f"{len(tested)} parameter{'s' if len(tested) > 1 else ''} ({', '.join(tested)}), none injectable; "
                  f"{len(statuses)} requests ({summary}) in {elapsed:.0f} s")


def main():
    ap = argparse.ArgumentParser()
    for name in ("base", "ca", "cred", "sqlmap", "out", "space", "message", "doomed-message", "member"):
        ap.add_argument("--" + name, required=True)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--risk", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--operations", default="", help="only the operations matching this regex")
    args = ap.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca)
    doc = json.load(urllib.request.urlopen(args.base + "/openapi.json", context=ctx))
    values = {"base": args.base, "space": args.space, "message": args.message,
              "member": args.member, "admin": args.cred.split(":", 1)[0], "after": args.message}
    targets, problems = plan(doc, values)
    targets = [t for t in targets if re.search(args.operations, t[0])]
    failed = 0
    for p in problems:
        print(f"FAIL sqlmap.plan: {p}")
        failed += 1
    runnable = [t for t in targets if t[2] is not None]
    for t in targets:
        if t[2] is None:
            print(f"SKIP sqlmap.{t[0]}: the operation takes no parameter or body")
    # Longest first, so the jobs end together. A request that writes commits an audit intent
    # record durably first (about 3 times the cost of a read here), the DELETE of a member
    # is preceded by a re-grant, and each POST /users with a valid name hashes a password.
    def cost(t):
        label, method = t[0], t[1]
        writes = method == "POST" or "{username}" in label
        return t[4][0] * (3 if writes else 1) * (2 if label == "POST /users" else 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {}
        for t in sorted(runnable, key=cost, reverse=True):
            if t[1] == "DELETE" and "{msgId}" in t[0]:
                # A message of its own, so the other operations find theirs.
                t = (t[0], t[1], t[2].replace(f"/messages/{args.message}*", f"/messages/{args.doomed_message}*"),
                     t[3], t[4], t[5])
            futures[pool.submit(run_one, t, args, values)] = t[0]
        for fut in concurrent.futures.as_completed(futures):
            ok, detail = fut.result()
            if not ok:
                failed += 1
            print(f"{'PASS' if ok else 'FAIL'} sqlmap.{futures[fut]}: {detail}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
