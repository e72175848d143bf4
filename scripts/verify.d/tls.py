#!/usr/bin/env python3
"""Judges sslyze's JSON output (scripts/verify, check `tls`).

Usage: tls.py SSLYZE_JSON SSLYZE_CONSOLE_LOG

The scan must have run --sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 --compression
--reneg --certinfo --certinfo_ca_file DATA_DIR/ca.pem --mozilla_config intermediate, its
console output in SSLYZE_CONSOLE_LOG (where sslyze reports the Mozilla compliance). Prints
one `PASS tls.NAME: ...` or `FAIL tls.NAME: ...` line per property; exit status 1 when any
fails.
"""

import json
import re
import sys

# TLS 1.2: forward secrecy (ECDHE) and an AEAD (GCM or ChaCha20-Poly1305), nothing else.
TLS12_ALLOWED = re.compile(r"^TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$")
# TLS 1.3 suites are all AEAD with (EC)DHE; these are the ones RFC 8446 recommends.
TLS13_ALLOWED = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}

failed = 0


def report(ok, name, detail):
    global failed
    if not ok:
        failed += 1
    print(f"{'PASS' if ok else 'FAIL'} tls.{name}: {detail}")


def command(scan, name):
    """The result of one scan command, or None (and a FAIL line) when it did not complete."""
    attempt = scan.get(name) or {}
    if attempt.get("status") != "COMPLETED" or attempt.get("result") is None:
        report(False, name, f"sslyze did not complete it: {attempt.get('status')} "
                            f"{(attempt.get('error_trace') or '')[-300:]!r}")
        return None
    return attempt["result"]


def main():
    doc = json.load(open(sys.argv[1]))
    servers = doc.get("server_scan_results") or []
    if len(servers) != 1 or servers[0].get("connectivity_status") != "COMPLETED":
        err = servers[0].get("connectivity_error_trace") if servers else doc.get("invalid_server_strings")
        report(False, "connectivity", f"sslyze could not connect: {err!r:.300}")
        return 1
    server = servers[0]
    scan = server["scan_result"]
    where = f"{server['server_location']['hostname']}:{server['server_location']['port']}"

    # Protocol versions: exactly TLS 1.2 and 1.3.
    versions = [("SSL 2.0", "ssl_2_0_cipher_suites", False), ("SSL 3.0", "ssl_3_0_cipher_suites", False),
                ("TLS 1.0", "tls_1_0_cipher_suites", False), ("TLS 1.1", "tls_1_1_cipher_suites", False),
                ("TLS 1.2", "tls_1_2_cipher_suites", True), ("TLS 1.3", "tls_1_3_cipher_suites", True)]
    results = {}
    for label, key, wanted in versions:
        result = command(scan, key)
        if result is None:
            continue
        results[key] = result
        supported = bool(result["is_tls_version_supported"]) or bool(result["accepted_cipher_suites"])
        accepted = len(result["accepted_cipher_suites"])
        if wanted:
            report(supported, f"protocol.{label.replace(' ', '')}",
                   f"{label} accepted ({accepted} suites) on {where}" if supported
                   else f"{label} refused on {where}, but it must be offered")
        else:
            report(not supported, f"protocol.{label.replace(' ', '')}",
                   f"{label} refused ({len(result['rejected_cipher_suites'])} suites tried)" if not supported
                   else f"{label} ACCEPTED with {accepted} suites")

    # Cipher suites.
    if "tls_1_2_cipher_suites" in results:
        names = [c["cipher_suite"]["name"] for c in results["tls_1_2_cipher_suites"]["accepted_cipher_suites"]]
        bad = [n for n in names if not TLS12_ALLOWED.match(n)]
        report(bool(names) and not bad, "ciphers.TLS1.2",
               f"only ECDHE + AEAD: {', '.join(names)}" if names and not bad
               else f"not forward-secret AEAD: {', '.join(bad) or 'no suite accepted'}")
    if "tls_1_3_cipher_suites" in results:
        names = [c["cipher_suite"]["name"] for c in results["tls_1_3_cipher_suites"]["accepted_cipher_suites"]]
        bad = [n for n in names if n not in TLS13_ALLOWED]
        report(bool(names) and not bad, "ciphers.TLS1.3",
               f"{', '.join(names)}" if names and not bad
               else f"unexpected: {', '.join(bad) or 'no suite accepted'}")
        # Key exchange of the accepted suites (TLS 1.2 and 1.3): ephemeral ECDH only.
    kex = set()
    for key in ("tls_1_2_cipher_suites", "tls_1_3_cipher_suites"):
        for c in results.get(key, {}).get("accepted_cipher_suites", []):
            eph = c.get("ephemeral_key") or {}
            kex.add(f"{eph.get('type_name')}/{eph.get('curve_name') or eph.get('size')}")
    report(bool(kex) and all(k.startswith("ECDH/") for k in kex), "key_exchange",
           f"ephemeral keys: {', '.join(sorted(kex))}")

    # Compression (CRIME).
    result = command(scan, "tls_compression")
    if result is not None:
        report(not result["supports_compression"], "compression",
               "TLS compression refused" if not result["supports_compression"] else "TLS compression ACCEPTED")

    # Renegotiation.
    result = command(scan, "session_renegotiation")
    if result is not None:
        refused = (not result["is_vulnerable_to_client_renegotiation_dos"]
                   and result["client_renegotiations_success_count"] == 0)
        report(refused, "client_renegotiation",
               "client-initiated renegotiation refused" if refused else
               f"client-initiated renegotiation ACCEPTED ({result['client_renegotiations_success_count']} times)")
        report(result["supports_secure_renegotiation"], "secure_renegotiation",
               "RFC 5746 renegotiation_info signalled (TLS 1.2; TLS 1.3 has no renegotiation)"
               if result["supports_secure_renegotiation"] else
               "the server does not signal secure renegotiation (RFC 5746) on TLS 1.2")

    # Certificate: the chain the server sends validates against the development CA.
    result = command(scan, "certificate_info")
    if result is not None:
        deployments = result.get("certificate_deployments") or []
        if not deployments:
            report(False, "certificate", "no certificate received")
        else:
            dep = deployments[0]
            supplied = [p for p in dep["path_validation_results"]
                        if p["trust_store"]["name"] == "Supplied CA file"]
            problems = []
            if not supplied:
                problems.append("no validation against the supplied CA file (--certinfo_ca_file)")
            for p in supplied:
                if not p["was_validation_successful"]:
                    problems.append(f"does not validate against {p['trust_store']['path']}: {p['validation_error']}")
            if not dep.get("received_chain_has_valid_order"):
                problems.append("the received chain is out of order")
            if dep.get("verified_chain_has_sha1_signature"):
                problems.append("a SHA-1 signature in the chain")
            leaf = dep["received_certificate_chain"][0]["subject"]["rfc4514_string"]
            chain = supplied[0].get("verified_certificate_chain") if supplied else None
            anchor = chain[-1]["subject"]["rfc4514_string"] if chain else "?"
            report(not problems, "certificate",
                   f"{leaf} -> {anchor}, valid for {result['hostname_used_for_server_name_indication']}"
                   if not problems else "; ".join(problems))

    # Mozilla's "intermediate" server configuration (versions, suites, curves, certificate
    # type and lifespan), judged by sslyze itself.
    console = open(sys.argv[2], errors="replace").read()
    section = console.split("COMPLIANCE AGAINST TLS CONFIGURATION", 1)[-1]
    if "OK - Compliant." in section:
        report(True, "mozilla_intermediate", "compliant with Mozilla's intermediate configuration")
    else:
        issues = [line.strip() for line in section.splitlines() if line.strip().startswith("*")]
        report(False, "mozilla_intermediate",
               "; ".join(issues) or "sslyze did not report compliance: " + section.strip()[-300:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
