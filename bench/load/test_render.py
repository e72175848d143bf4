"""Tests of the rendering in bench/load/load.py: python3 bench/load/test_render.py (run by
.ci/run). The reports are made up here, with round numbers, so that what each row says can
be checked; none of them is a measurement."""

import copy
import pathlib
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import load  # noqa: E402

ERRORS = {"connect_errors": 0, "read_errors": 0, "write_errors": 0, "non_2xx_3xx": 0, "timeouts": 0}


def case(rps, p99_us=2000, cpu_us=100, **extra):
    return {"requests": rps * 10, "requests_per_s": rps, "p50_us": 1000, "p99_us": p99_us, "errors": 0,
            "server_cpu_us_per_request": cpu_us, **ERRORS, **extra}


def flood():
    return {"statuses": {"401": 5, "429": 1000}, "requests_per_s": 100.0, "cpu_seconds": 3.0, "seconds": 10.0}


MEM = {"VmHWM": 40_000, "VmRSS": 30_000}


def memory():
    return {"env": {}, "idle": MEM, "after_setup": MEM, "connections": 256, "load": case(5000),
            "under_load": dict(MEM, VmRSS_max_sampled=30_000), "after_flood": MEM, "flood": flood()}


def old_report():
    """The shape of a report from before (3b), (3u)/(4u), the nginx peer and the idle case."""
    cases = {"baseline_read": 10_000, "health": 5_000, "read": 3_000, "baseline_write": 4_000, "write": 2_000,
             "read_flooded": 2_500, "baseline_read_flooded": 5_000}
    c = {k: [case(v), case(v)] for k, v in cases.items()}
    for k in ("read_flooded", "baseline_read_flooded"):
        for x in c[k]:
            x["flood"] = flood()
    return {"date": "2026-01-01", "cores": 2, "cpu": "a CPU", "loadavg_at_start": ["0", "0", "0"],
            "wrk": "wrk 4", "settings": {"seconds": 10, "warmup": 3, "threads": 2, "connections": 16, "rounds": 2,
                                         "flood_connections": 8, "mem_connections": 256},
            "raised_quotas": {}, "cases": c, "natterjack_after_cases": MEM, "baseline_after_cases": MEM,
            "memory": memory(), "memory_mmap_threshold_fixed": memory()}


def new_report():
    r = copy.deepcopy(old_report())
    # (3) does 3,000/s: twice (6) exactly, 300 times (7); (8) at 20,000/s.
    for k, v, cpu in (("nginx_apr1", 1_500, 300), ("nginx_bcrypt", 10, 80_000), ("nginx_noauth", 20_000, 15)):
        r["cases"][k] = [case(v, cpu_us=cpu), case(v, cpu_us=cpu)]
    r["cases"]["nginx_bcrypt"][1]["timeouts"] = 3
    r["cases"]["nginx_bcrypt"][1]["errors"] = 3
    r["nginx"] = {"version": "nginx/1.22.1", "workers": 2, "body_bytes": 152, "keepalive_requests": 1_000_000,
                  "conf": "..."}
    n = 10_000
    r["idle"] = {
        "server": "natterjack", "env": {}, "connections": n, "sources": 20, "keep_alive_timeout_s": 3600,
        "active_connections": 4, "server_open_files_limit": 20_000,
        "before": {"VmHWM": 50 * 1024, "VmRSS": 30 * 1024}, "held": {"VmHWM": 200 * 1024, "VmRSS": 180 * 1024},
        "held_after_active": {"VmHWM": 300 * 1024, "VmRSS": 180 * 1024}, "end": MEM,
        # p99 without: mean of 2 ms and 4 ms = 3 ms; with: 7 ms, more than twice that.
        "active_before": case(3000, p99_us=2000), "active_during": case(2900, p99_us=7000),
        "active_after": case(3000, p99_us=4000),
        "clients_ready": {"open": n, "failed": {}, "statuses": {"200": n}, "tls_versions": {"TLSv1.3": n},
                          "seconds_to_open": 25.0, "nofile": 20_000},
        "clients_done": {"open": n, "closed_by_server": 0, "held_s": 30.0},
    }
    return r


def row(section, start):
    lines = [line for line in section.splitlines() if line.startswith(start)]
    assert len(lines) == 1, (start, lines)
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


class Render(unittest.TestCase):
    def test_an_old_report_renders_without_the_new_rows(self):
        section = load.render(old_report())
        self.assertTrue(section.startswith(load.SECTION))
        self.assertNotIn("nginx", section)
        self.assertNotIn("idle TLS connections", section)

    def test_the_nginx_rows_give_natterjacks_multiple_and_whether_the_targets_are_met(self):
        section = load.render(new_report())
        apr1 = row(section, "| (6) nginx")
        self.assertEqual(apr1[1], "1500")
        self.assertEqual(apr1[4], "300 µs")
        self.assertEqual(apr1[5:], ["(3) is 2.00× (6)", "(3) ≥ 2× (6)", "yes"])
        bcrypt = row(section, "| (7) (6)")
        self.assertEqual(bcrypt[5:], ["(3) is 300× (7)", "(3) ≥ 200× (7)", "yes"])
        self.assertEqual(row(section, "| (8) (6)")[5:], ["2.000 of (1); (3) is 0.15× (8)", "none", ""])
        self.assertIn("(7) 3 timeouts", section)
        self.assertIn("`keepalive_requests` raised from 1,000 to 1,000,000", section)
        self.assertEqual(row(section, "| (7) | 10 | 10 |")[3:], ["300.0, 300.0", "(3) ÷ (7)"])

    def test_the_room_each_target_leaves_is_set_against_what_storing_the_audit_records_cost(self):
        r = new_report()
        self.assertNotIn("What the targets leave", load.render(r))
        # wrk 20 µs and the server 100 µs per request everywhere; the writer thread as given.
        for k, writer in (("baseline_read", 1), ("health", 11), ("read", 7), ("baseline_write", 10), ("write", 40)):
            for x in r["cases"][k]:
                x.update(wrk_cpu_us_per_request=20, writer_cpu_us_per_request=writer)
        text = " ".join(load.render(r).split())
        # (2): (100 + 20) / 0.9 - 20 = 113 µs, 13 more than (1); 10 µs of audit is 75% of that.
        self.assertIn("(2) could spend 113 µs of server CPU per request, 13 µs more than (1)", text)
        self.assertIn("took 10.0 µs per request of (2), 75% of it", text)
        # (3): 120 / 0.8 - 20 = 130 µs, 30 more; (4) likewise against (1w), its audit 30 µs.
        self.assertIn("6.0 µs of (3), 20% of it", text)
        self.assertIn("30.0 µs of (4), 100% of it", text)
        # wrk's part is the reference's, whatever it cost against (2).
        for x in r["cases"]["health"]:
            x["wrk_cpu_us_per_request"] = 40
        self.assertIn("took 10.0 µs per request of (2), 75% of it", " ".join(load.render(r).split()))
        for x in r["cases"]["health"]:
            x["writer_cpu_us_per_request"] = 31
        self.assertIn("took 30.0 µs per request of (2), 225% of it", " ".join(load.render(r).split()))

    def test_a_target_missed_is_marked(self):
        r = new_report()
        for x in r["cases"]["nginx_apr1"]:
            x["requests_per_s"] = 2_000
        self.assertEqual(row(load.render(r), "| (6) nginx")[5:], ["(3) is 1.50× (6)", "(3) ≥ 2× (6)", "**no**"])

    def test_the_idle_case_checks_peak_memory_and_the_active_clients_p99(self):
        section = load.render(new_report())
        self.assertIn("Memory with 10,000 idle TLS connections", section)
        self.assertIn("`rest.keep_alive_timeout_secs` (75) and `rest.header_read_timeout_secs` (10) both raised to 3,600", section)
        self.assertEqual(row(section, "| the same, after the active client's run")[1:],
                         ["300.0 MiB", "180.0 MiB", "VmHWM ≤ 256 MiB", "**no**"])
        self.assertEqual(row(section, "| 10,000 idle TLS connections held")[2], "180.0 MiB (15.4 KiB more per connection)")
        self.assertEqual(row(section, "| with 10,000 idle connections held")[3:],
                         ["7.00 ms", "0", "p99 ≤ 2× without (6.00 ms)", "**no**"])

    def test_the_refusals_compare_each_natterjack_with_the_baseline_and_the_shipped_row_is_optional(self):
        def alone(rate, cpu_us, statuses):
            return {"flood": {"requests_per_s": rate, "statuses": statuses}, "server_cpu_s": 1.0,
                    "seconds": 10.0, "server_cpu_us_per_answer": cpu_us}

        r = new_report()
        r["flood_alone"] = {"natterjack": alone(30_000, 20.0, {"401": 5, "429": 1000}),
                            "baseline": alone(40_000, 10.0, {"404": 2000})}
        section = load.render(r)
        self.assertEqual(row(section, "| Natterjack, the quotas raised")[3:],
                         ["5 × 401, 1,000 × 429", "20.0 µs", "2.00", "≤ 1.00", "**no**"])
        self.assertNotIn("every quota as shipped |", section)
        self.assertEqual(row(section, "| baseline | a 404")[4:6], ["10.0 µs", "1.00"])
        r["flood_alone"]["natterjack_shipped"] = alone(31_000, 9.5, {"429": 1000})
        self.assertEqual(row(load.render(r), "| Natterjack, every quota as shipped")[4:],
                         ["9.5 µs", "0.95", "≤ 1.00", "yes"])


class RenderRefusals(unittest.TestCase):
    def test_only_refusals_averages_the_rounds_and_sums_the_answers(self):
        def run(cpu_us, statuses):
            return {"flood": {"requests_per_s": 100.0, "statuses": statuses}, "server_cpu_us_per_answer": cpu_us}

        lines = load.render_refusals({"natterjack": [run(30.0, {"429": 10}), run(10.0, {"429": 20})],
                                      "baseline": [run(8.0, {"404": 5}), run(12.0, {"404": 5})]})
        self.assertEqual(lines[2], "| natterjack | 100 | 30 × 429 | 20.0 µs | 2.00 |")
        self.assertEqual(lines[3], "| baseline | 100 | 10 × 404 | 10.0 µs | 1.00 |")


if __name__ == "__main__":
    unittest.main()
