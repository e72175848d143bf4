#!/usr/bin/env python3
"""Password guessing spread over many addresses (scripts/verify, check `guessing`).

Usage: guessing.py BASE_URL CA_FILE VICTIM PASSWORD

BASE_URL is a server started by scripts/verify with the default login budgets; VICTIM
exists with PASSWORD. The victim first logs in from her usual address, 127.0.0.9. Then 200
addresses (127.0.1.1 to 127.0.1.200) try 5 passwords each, in turn, from a list of 1,000
whose 991st is the right one, as `GET /spaces` with Basic credentials, each address within
its own per-address budget. Halfway, the victim logs in again from 127.0.0.9.

Lines: `guessing.not_found` (no guess succeeded), `guessing.account_budget` (at most 21
guesses were judged, 401; every later one was refused, 429 `account-guesses`) and
`guessing.owner_served` (the victim's own address was served during the attack). Exit
status 1 when any line fails.
"""

import base64
import http.client
import ssl
import sys
import urllib.parse
from collections import Counter

failed = 0


def report(ok, name, detail):
    global failed
    if not ok:
        failed += 1
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)


def spaces(host, port, ctx, source, user, password):
    """(status, RateLimit-Policy) of GET /spaces as user:password from `source`."""
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30, source_address=(source, 0))
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request("GET", "/spaces", headers={"Authorization": f"Basic {token}", "Host": "localhost"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("ratelimit-policy") or ""
    finally:
        conn.close()


def main():
    base, ca, victim, password = sys.argv[1:5]
    target = urllib.parse.urlsplit(base)
    host, port = target.hostname, target.port
    ctx = ssl.create_default_context(cafile=ca)
    owner = "127.0.0.9"
    first, _ = spaces(host, port, ctx, owner, victim, password)
    if first != 200:
        report(False, "guessing.owner_served", f"the victim's own first login got {first}")
        return 1
    words = [password if i == 990 else f"guess-{i:04d}-lantern" for i in range(1000)]
    statuses, policies, owner_during = Counter(), Counter(), None
    for n in range(200):
        source = f"127.0.1.{n + 1}"
        for word in words[n * 5:(n + 1) * 5]:
            status, policy = spaces(host, port, ctx, source, victim, word)
            statuses[status] += 1
            if status == 429:
                policies[policy.split(";")[0].strip('"')] += 1
        if n == 100:
            owner_during, _ = spaces(host, port, ctx, owner, victim, password)
    report(statuses[200] == 0, "guessing.not_found",
           f"1000 guesses from 200 addresses, the password 991st: {dict(statuses)}")
    judged = statuses[401]
    report(judged <= 21 and statuses[429] == 1000 - judged and set(policies) == {"account-guesses"},
           "guessing.account_budget",
           f"{judged} guesses judged (401), then 429 by {dict(policies)}")
    report(owner_during == 200, "guessing.owner_served",
           f"the victim's usual address got {owner_during} during the attack")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
