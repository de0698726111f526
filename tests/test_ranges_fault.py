"""Ranges under faults, with the real executables.

1. worker_kill9      one of two workers is kill -9'ed while a published (R)
                     range and a counted (Q) range are being sieved: the
                     leases of its pieces run out and the other worker does
                     them; a sink's --tags P output holds every prime of the
                     R range exactly once, and both announced counts are
                     right.
2. broker_kill9      the broker, with a journal, is kill -9'ed twice while
                     the same two ranges are being sieved, and restarted on
                     the same endpoints and journal: it cuts again only
                     what was not done. A sink that stays up fills what it
                     missed from history: every prime exactly once; the
                     --count-only source prints the right count although
                     its range finished under another broker process.
3. broker_kill9_no_journal
                     a broker without a journal is kill -9'ed mid-range
                     and restarted: it forgot the counted range, and the
                     --count-only source, seeing its connection drop and
                     come back, sends the range again (same request id);
                     it prints the right count, once.

The oracle is the primesieve program (a process of its own, not the
library the workers call) and, for the count, pi known independently.
"""
import collections
import os
import re
import shutil
import signal
import subprocess
import time

import harness
from harness import Cluster, private_endpoints, read_records, sink_endpoints

# Published: ~1,160,000 primes in 77 pieces of 2^19 just below 10^15,
# where a worker calls libprimesieve anew for each piece (worker/sieve.h;
# from 10^15 up one iterator runs through consecutive pieces, too fast to
# be caught mid-range), slow enough to be caught mid-range; counted:
# pieces of 2^22.
R_RANGE = (10**15 - 4 * 10**7, 10**15 - 1)
Q_RANGE = (0, 2 * 10**9)
PI_2E9 = 98222287           # pi(2 * 10^9), a known value (not program output)


def primesieve_list(lo, hi):
    if not shutil.which("primesieve"):
        raise harness.Skip("the primesieve program is not installed")
    out = subprocess.run(["primesieve", str(lo), str(hi), "--print", "-q", "-t1"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [int(word) for word in out.split()]


def start_workers(c, ep, count):
    return [c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"],
                    "--threads", 1, "--name", "w%d" % index, "--timeout", 1000,
                    "--retries", 60, name="worker-%d" % index)
            for index in range(count)]


def start_sources(c, ep):
    """The R range from one source, the Q range from a --count-only one."""
    r_source = c.start("source", "--connect", ep["source"], "--range", "%d:%d" % R_RANGE,
                       "--timeout", 1000, "--retries", 60)
    counts = c.path("counts.txt")
    q_source = c.start("source", "--connect", ep["source"], "--publish", ep["publish"],
                       "--history", ep["history"], "--count-only",
                       "--range", "%d:%d" % Q_RANGE, "--timeout", 1000, "--retries", 60,
                       stdout=counts)
    return r_source, q_source, counts


def check_outputs(primes_out, all_out, counts, expected):
    """Every prime once, the announcements and the printed count right."""
    primes = [v for tag, v in read_records(primes_out) if tag == "P"]
    twice = [v for v, n in collections.Counter(primes).items() if n > 1]
    assert not twice, "primes published twice: %s" % twice[:10]
    assert sorted(primes) == expected, "published primes differ: %d vs %d" % (
        len(primes), len(expected))
    with open(all_out) as handle:
        announced = [line.split() for line in handle if line.startswith("R ")]
    assert ["R", "%d:%d" % R_RANGE, str(len(expected))] in announced, announced
    assert ["R", "%d:%d" % Q_RANGE, str(PI_2E9)] in announced, announced
    assert len(announced) == 2, announced
    with open(counts) as handle:
        assert handle.read() == "%d:%d %d\n" % (Q_RANGE + (PI_2E9,))


def test_worker_kill9():
    expected = primesieve_list(*R_RANGE)
    with Cluster("ranges-worker-kill9") as c:
        broker, ep = c.start_broker("--stats", 0, "--lease-ms", 1000,
                                    "--range-lease", 1 << 22, endpoints=private_endpoints())
        primes_out, all_out = c.path("primes.txt"), c.path("all.txt")
        sink_p = c.start("sink", *sink_endpoints(ep), "--tags", "P", stdout=primes_out)
        sink_r = c.start("sink", *sink_endpoints(ep), "--tags", "R", stdout=all_out)
        broker.wait_for_log(r"sink subscribed", count=2)
        workers = start_workers(c, ep, 2)
        r_source, q_source, counts = start_sources(c, ep)
        # Mid-range: some primes out, not all.
        harness.wait_for_lines(primes_out, len(expected) // 5, 60)
        assert harness.count_lines(primes_out) < len(expected), "the kill came too late"
        workers[0].kill()
        assert r_source.wait(60) == 0, r_source.log()
        assert q_source.wait(120) == 0, q_source.log()
        harness.wait_for_lines(primes_out, len(expected), 60)
        harness.wait_for_lines(all_out, 2, 30)
        for proc in (sink_p, sink_r):
            assert proc.stop(timeout=5) == 0, proc.log()
        check_outputs(primes_out, all_out, counts, expected)
        assert broker.stop(timeout=5) == 0
        harness.report("ranges_worker_kill9", harness.Verdict(
            len(expected), harness.count_lines(primes_out), 0, 0, 0, 0))


def test_broker_kill9():
    expected = primesieve_list(*R_RANGE)
    with Cluster("ranges-broker-kill9") as c:
        args = ("--journal", c.path("journal"), "--stats", 0, "--lease-ms", 1000,
                "--range-lease", 1 << 22)
        broker, ep = c.start_broker(*args, endpoints=private_endpoints(), name="broker")
        primes_out, all_out = c.path("primes.txt"), c.path("all.txt")
        sink_p = c.start("sink", *sink_endpoints(ep), "--tags", "P", stdout=primes_out)
        sink_r = c.start("sink", *sink_endpoints(ep), "--tags", "R", stdout=all_out)
        broker.wait_for_log(r"sink subscribed", count=2)
        workers = start_workers(c, ep, 2)
        r_source, q_source, counts = start_sources(c, ep)
        for round in range(2):
            harness.wait_for_lines(primes_out, len(expected) * (round + 1) // 4, 60)
            assert harness.count_lines(primes_out) < len(expected), "the kill came too late"
            # Workers hold pieces in flight as the broker dies.
            for worker in workers:
                worker.signal(signal.SIGSTOP)
            time.sleep(0.3)
            broker.kill()
            for worker in workers:
                worker.signal(signal.SIGCONT)
            time.sleep(0.3)
            broker, _ = c.start_broker(*args, endpoints=ep, name="broker")
        assert r_source.wait(60) == 0, r_source.log()
        assert q_source.wait(180) == 0, q_source.log()
        harness.wait_for_lines(primes_out, len(expected), 60)
        harness.wait_for_lines(all_out, 2, 30)
        for proc in (sink_p, sink_r):
            assert proc.stop(timeout=5) == 0, proc.log()
        check_outputs(primes_out, all_out, counts, expected)
        going_on = [int(n) for n in re.findall(r"(\d+) ranges not done go on", broker.log())]
        assert broker.stop(timeout=5) == 0
        assert going_on[1:] and all(n > 0 for n in going_on[1:]), going_on
        harness.report("ranges_broker_kill9", harness.Verdict(
            len(expected), harness.count_lines(primes_out), 0, 0, 0, 0),
            ranges_going_on=going_on[1:])


PI_1E10 = 455052511         # pi(10^10), a known value (OEIS A006880)


def test_broker_kill9_no_journal():
    q_range = (0, 10**10)
    with Cluster("ranges-broker-kill9-no-journal") as c:
        args = ("--stats", 0, "--lease-ms", 2000, "--range-lease", 1 << 24)
        broker, ep = c.start_broker(*args, endpoints=private_endpoints(), name="broker")
        workers = start_workers(c, ep, 2)
        counts = c.path("counts.txt")
        source = c.start("source", "--connect", ep["source"], "--publish", ep["publish"],
                         "--history", ep["history"], "--count-only",
                         "--range", "%d:%d" % q_range, "--timeout", 1000, "--retries", 60,
                         stdout=counts)
        # Mid-range: some pieces sieved, then the workers frozen so that the
        # range cannot end before the kill however fast the machine is.
        time.sleep(0.4)
        for worker in workers:
            worker.signal(signal.SIGSTOP)
        assert source.popen.poll() is None, "the range was done before the kill"
        broker.kill()
        for worker in workers:
            worker.signal(signal.SIGCONT)
        time.sleep(0.5)
        broker, _ = c.start_broker(*args, endpoints=ep, name="broker")
        assert source.wait(180) == 0, source.log()
        with open(counts) as handle:
            assert handle.read() == "%d:%d %d\n" % (q_range + (PI_1E10,))
        assert "sending the 1 ranges still waiting" in source.log(), source.log()
        assert broker.stop(timeout=5) == 0


if __name__ == "__main__":
    harness.run_tests(globals())
