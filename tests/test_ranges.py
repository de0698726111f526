"""Ranges end to end: the real executables on free loopback ports.

A broker, two workers (one thread each), sources asking for ranges (R:
every prime published; Q, --count-only: the count printed by the source)
and sinks. Every answer is checked against an oracle independent of the
code under test: the known values of pi(10^k) (mathematical constants,
OEIS A006880), the `primesieve` program's count and list (a separate
process, not libprimesieve as the workers call it), or harness.is_prime
for short intervals. Bad ranges get their own E codes.
"""
import os
import random
import shutil
import subprocess
import time

import harness
from harness import (Cluster, private_endpoints, rawreq, read_records, record_hex,
                     sink_endpoints)

TOP = 2**63 - 1

# pi(10^k), k = 0..10: known values (OEIS A006880), not program output.
PI = [0, 4, 25, 168, 1229, 9592, 78498, 664579, 5761455, 50847534, 455052511]


def primesieve(lo, hi, what):
    """The primesieve program's count (what='count') or list ('print') of
    the primes in [lo, hi]."""
    if not shutil.which("primesieve"):
        raise harness.Skip("the primesieve program is not installed (tools/packages-test.txt)")
    flag = "--count" if what == "count" else "--print"
    out = subprocess.run(["primesieve", str(lo), str(hi), flag, "-q", "-t1"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    values = [int(word) for word in out.split()]
    return values[0] if what == "count" else values


def python_primes(lo, hi):
    return [n for n in range(lo, hi + 1) if harness.is_prime(n)]


def start_pipeline(c, *broker_args):
    # Private ports: clients of other runs on this machine never meet us.
    broker, ep = c.start_broker("--stats", "0", *broker_args, endpoints=private_endpoints())
    workers = [c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"],
                       "--threads", 1, "--name", "w%d" % index) for index in range(2)]
    return broker, ep, workers


def read_counts(path):
    """'lo:hi count' lines of a --count-only source: a list of (lo, hi, count)."""
    counts = []
    with open(path) as handle:
        for line in handle:
            bounds, count = line.split()
            lo, hi = bounds.split(":")
            counts.append((int(lo), int(hi), int(count)))
    return counts


def count_only(c, ep, ranges, name="count"):
    """Runs a --count-only source over ranges; returns {(lo, hi): count}."""
    out = c.path("%s.txt" % name)
    args = ["--connect", ep["source"], "--publish", ep["publish"],
            "--history", ep["history"], "--count-only"]
    for lo, hi in ranges:
        args += ["--range", "%d:%d" % (lo, hi)]
    source = c.start("source", *args, stdout=out)
    assert source.wait(240) == 0, source.log()
    counts = read_counts(out)
    assert len(counts) == len(ranges), (counts, ranges)
    return {(lo, hi): count for lo, hi, count in counts}


def test_pi_of_powers_of_ten():
    """pi(10^k) for k <= 10 through the whole pipeline, count only, with
    pieces small enough that pi(10^9) spreads over both workers."""
    with Cluster("ranges") as c:
        broker, ep, workers = start_pipeline(c, "--range-lease", 1 << 24)
        ranges = [(0, 10**k) for k in range(11)]
        counts = count_only(c, ep, ranges)
        for k in range(11):
            assert counts[(0, 10**k)] == PI[k], (k, counts[(0, 10**k)], PI[k])
        assert broker.stop(timeout=5) == 0
        # Both workers sieved pieces.
        for name in ("w0", "w1"):
            assert "worker %s: numbers" % name in broker.log(), broker.log()


def test_counts_vs_primesieve():
    """Counts of random intervals anywhere below 2^63, the very top
    included, and of the edge cases, against the primesieve program."""
    rng = random.Random(63)
    ranges = [(0, 0), (0, 1), (1, 1), (2, 2), (0, 2), (1, 2), (4, 4), (97, 97),
              (TOP - 24, TOP - 24), (TOP, TOP), (TOP - 10**6, TOP),
              (10**18, 10**18 + 10**6)]
    for bits in (20, 33, 40, 47, 55, 62):
        lo = rng.randrange(2**bits, 2**(bits + 1))
        ranges.append((lo, min(TOP, lo + rng.randrange(1, 3 * 10**6))))
    with Cluster("ranges") as c:
        broker, ep, workers = start_pipeline(c, "--range-lease", 1 << 20)
        counts = count_only(c, ep, ranges)
        for lo, hi in ranges:
            if hi - lo < 2000:
                expected = len(python_primes(lo, hi))
            else:
                expected = primesieve(lo, hi, "count")
            assert counts[(lo, hi)] == expected, (lo, hi, counts[(lo, hi)], expected)


def test_published_primes_vs_primesieve():
    """Every prime of R ranges published once as P, in a sink's --tags P
    output equal to the primesieve program's list; one announcement per
    range with the right count; near 10^12, near 10^18 and at the top."""
    ranges = [(10**12, 10**12 + 10**6), (10**18, 10**18 + 3 * 10**5),
              (TOP - 2 * 10**5, TOP), (0, 2), (5, 5)]
    with Cluster("ranges") as c:
        broker, ep, workers = start_pipeline(c)
        primes_out, all_out = c.path("primes.txt"), c.path("all.txt")
        sink_p = c.start("sink", *sink_endpoints(ep), "--tags", "P", stdout=primes_out)
        sink_r = c.start("sink", *sink_endpoints(ep), "--tags", "PR", stdout=all_out)
        broker.wait_for_log(r"sink subscribed", count=3)
        args = ["--connect", ep["source"]]
        for lo, hi in ranges:
            args += ["--range", "%d:%d" % (lo, hi)]
        source = c.start("source", *args)
        assert source.wait(120) == 0, source.log()
        expected = []
        for lo, hi in ranges:
            expected += primesieve(lo, hi, "print") if hi - lo > 1000 else python_primes(lo, hi)
        harness.wait_for_lines(all_out, len(expected) + len(ranges), 120)
        harness.wait_for_lines(primes_out, len(expected), 30)
        for sink in (sink_p, sink_r):
            assert sink.stop(timeout=5) == 0, sink.log()
        primes = read_records(primes_out)
        assert all(tag == "P" for tag, _ in primes)
        assert sorted(v for _, v in primes) == sorted(expected), "published primes differ"
        with open(all_out) as handle:
            announced = [line.split() for line in handle if line.startswith("R ")]
        got = {tuple(map(int, bounds.split(":"))): int(count) for _, bounds, count in announced}
        assert len(announced) == len(ranges), announced
        for lo, hi in ranges:
            assert got[(lo, hi)] == sum(1 for p in expected if lo <= p <= hi), (lo, hi)


def test_mixed_with_numbers():
    """Numbers and ranges in one input file, several per request: numbers
    get their verdicts, ranges their primes and announcements, and the
    sink's csv and json formats carry the announcement."""
    with Cluster("ranges") as c:
        broker, ep, workers = start_pipeline(c)
        text_out, csv_out, json_out = (c.path("out.%s" % f) for f in ("txt", "csv", "json"))
        sinks = [c.start("sink", *sink_endpoints(ep), "--tags", "PCR", "--format", fmt,
                         stdout=out)
                 for fmt, out in (("text", text_out), ("csv", csv_out), ("json", json_out))]
        broker.wait_for_log(r"sink subscribed", count=9)
        numbers = [1, 2, 91, 97, 10**12 + 39, 2**61 - 1]
        ranges = [(100, 200), (10**9, 10**9 + 1000), (0, 0)]
        lines = ["%d" % numbers[0], "%d:%d" % ranges[0], "%d" % numbers[1],
                 "%d" % numbers[2], "%d:%d" % ranges[1], "%d" % numbers[3],
                 "%d:%d" % ranges[2], "%d" % numbers[4], "%d" % numbers[5]]
        path = c.path("input.txt")
        with open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        source = c.start("source", "--connect", ep["source"], "--input", path,
                         "--batch", 4, "--acked", c.path("acked.txt"))
        assert source.wait(60) == 0, source.log()
        assert "3 ranges" in source.log(), source.log()
        assert sorted(harness.read_numbers(c.path("acked.txt"))) == sorted(numbers)
        range_primes = [p for lo, hi in ranges for p in python_primes(lo, hi)]
        want = len(numbers) + len(range_primes) + len(ranges)
        for out in (text_out,):
            harness.wait_for_lines(out, want, 60)
        harness.wait_for_lines(csv_out, want + 1, 30)
        harness.wait_for_lines(json_out, want, 30)
        for sink in sinks:
            assert sink.stop(timeout=5) == 0, sink.log()
        records = read_records(text_out)
        verdicts = {v: tag for tag, v in records}
        for n in numbers:
            assert verdicts[n] == ("P" if harness.is_prime(n) else "C"), n
        assert sorted(v for tag, v in records if tag == "P") == sorted(
            [n for n in numbers if harness.is_prime(n)] + range_primes)
        with open(text_out) as handle:
            text = handle.read()
        with open(csv_out) as handle:
            csv = handle.read()
        with open(json_out) as handle:
            json_text = handle.read()
        for lo, hi in ranges:
            count = len(python_primes(lo, hi))
            assert "R %d:%d %d\n" % (lo, hi, count) in text, text
            assert "R,%d:%d,%d\n" % (lo, hi, count) in csv, csv
            assert '{"tag":"R","lo":%d,"hi":%d,"count":%d}' % (lo, hi, count) in json_text


BAD_RANGES = [
    # (what, records, expected error code)
    ("R alone", [("R", 5)], 12),
    ("Q last after a number", [("N", 7), ("Q", 5)], 12),
    ("R then Q", [("R", 5), ("Q", 9)], 12),
    ("R then N", [("R", 5), ("N", 9), ("R", 10)], 12),
    ("lo above hi", [("R", 9), ("R", 5)], 13),
    ("Q lo above hi", [("N", 3), ("Q", 100), ("Q", 99)], 13),
    ("negative lo", [("R", -1), ("R", 5)], 14),
    ("negative hi", [("Q", -5), ("Q", -1)], 14),
    ("I then half", [("I", 42), ("R", 1), ("R", 2), ("R", 3)], 12),
]


def test_bad_ranges():
    """Each bad range gets its code, nothing of the request is taken, and
    the broker goes on serving; a forged piece report gets E 6 or E 7."""
    with Cluster("ranges") as c:
        broker, ep = c.start_broker("--stats", "0", endpoints=private_endpoints())
        for what, records, code in BAD_RANGES:
            frame = "".join(record_hex(tag, value) for tag, value in records)
            assert rawreq(ep["source"], frame) == [("E", code)], what
        good = record_hex("R", 10) + record_hex("R", 20) + record_hex("N", 4)
        assert rawreq(ep["source"], good) == [("A", 3)]
        # A piece report under an id this broker never issued.
        forged = record_hex("I", 12345) + record_hex("R", 10) + record_hex("R", 20)
        assert rawreq(ep["results"], forged) == [("E", 6)]
        assert broker.stop(timeout=5) == 0, broker.log()
        assert "E12:" in broker.log() and "E13:" in broker.log() and "E14:" in broker.log()
    # On the source's command line: exit 2 and a line saying what is wrong.
    source = harness.binary("source")
    for text, says in (("5:3", "LO is above HI"), ("-1:3", "negative"),
                       ("1:9223372036854775808", "HI is not a 64-bit integer"),
                       ("12", "not LO:HI"), ("a:5", "LO is not")):
        ran = subprocess.run([source, "--range", text], capture_output=True, text=True,
                             timeout=10)
        assert ran.returncode == 2 and says in ran.stderr, (text, ran.returncode, ran.stderr)


def test_lying_worker_on_a_range():
    """A worker that reports every odd number of its pieces as prime is
    caught by the audit on its first piece (E 11, cut off); the piece goes
    to an honest worker, and the sink's primes and the announcement are
    right: none of the lies was published."""
    lo, hi = 100000, 101999
    with Cluster("ranges") as c:
        # --audit 1: every record of a report tested, so the catch is sure.
        broker, ep = c.start_broker("--stats", "0", "--lease-ms", 1000, "--audit", 1,
                                    "--range-lease", 1000, endpoints=private_endpoints())
        out = c.path("out.txt")
        sink = c.start("sink", *sink_endpoints(ep), "--tags", "PR", stdout=out)
        broker.wait_for_log(r"sink subscribed", count=2)
        lies = c.path("liar.out")
        liar = harness.Proc(c, "liar", [os.path.join(harness.BUILD, "tests", "liar"),
                                        "--dispatch", ep["dispatch"], "--results",
                                        ep["results"], "--name", "liar", "--reports", "1"],
                            stdout=lies)
        c.procs.append(liar)
        time.sleep(0.5)             # the liar alone: the first piece is its
        source = c.start("source", "--connect", ep["source"], "--range", "%d:%d" % (lo, hi))
        assert source.wait(30) == 0, source.log()
        assert liar.wait(30) == 0, liar.log()
        with open(lies) as handle:
            report = handle.readline().split()
        assert report[:2] == ["report", "1"] and report[7:] == ["E", "11"], report
        assert int(report[5]) > 0, "the liar told no lie: %s" % report
        assert "audit: worker liar reported" in broker.log(), broker.log()
        honest = c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"],
                         "--threads", 1)
        expected = python_primes(lo, hi)
        harness.wait_for_lines(out, len(expected) + 1, 30)
        assert sink.stop(timeout=5) == 0, sink.log()
        records = read_records(out)
        assert sorted(v for _, v in records) == expected, "published primes differ"
        with open(out) as handle:
            assert "R %d:%d %d\n" % (lo, hi, len(expected)) in handle.read()
        assert honest.stop(timeout=5) == 0


def test_lying_worker_on_a_count():
    """A worker that counts a piece one off is caught by the audit on its
    first piece (E 11, cut off): a lie in the total only by the sum of its
    blocks, a lie in a block and the total alike by the recount of that
    block (one block drawn per report at the default --audit; pieces of one
    block here, so it is drawn). The piece goes to an honest worker and the
    source prints the right count, checked against Python's own test."""
    lo, hi = 200000, 209999
    expected = len(python_primes(lo, hi))
    for how in ("block", "sum"):
        with Cluster("ranges") as c:
            broker, ep = c.start_broker("--stats", "0", "--lease-ms", 1000,
                                        "--range-lease", 5000, endpoints=private_endpoints())
            lies = c.path("liar.out")
            liar = harness.Proc(c, "liar", [os.path.join(harness.BUILD, "tests", "liar"),
                                            "--dispatch", ep["dispatch"], "--results",
                                            ep["results"], "--name", "liar", "--reports", "1",
                                            "--count-lie", how], stdout=lies)
            c.procs.append(liar)
            time.sleep(0.5)         # the liar alone: the first piece is its
            out = c.path("count.txt")
            source = c.start("source", "--connect", ep["source"], "--publish", ep["publish"],
                             "--history", ep["history"], "--count-only",
                             "--range", "%d:%d" % (lo, hi), stdout=out)
            assert liar.wait(30) == 0, liar.log()
            with open(lies) as handle:
                report = handle.readline().split()
            assert report[:2] == ["report", "1"] and report[7:] == ["E", "11"], (how, report)
            assert "audit: worker liar reported Q" in broker.log(), broker.log()
            honest = c.start("worker", "--dispatch", ep["dispatch"], "--results",
                             ep["results"], "--threads", 1)
            assert source.wait(30) == 0, source.log()
            assert read_counts(out) == [(lo, hi, expected)], (how, read_counts(out))
            assert honest.stop(timeout=5) == 0


if __name__ == "__main__":
    harness.run_tests(globals())
