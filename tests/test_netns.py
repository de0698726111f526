"""Workers on several machines, as network namespaces on this one.

Six namespaces: a bridge, the broker (host "broker"), three workers, and a
client host with a source and a sink. Everyone finds the broker by name
(--broker broker, resolved through /etc/netns/<ns>/hosts) and reaches it
over the bridge, never over loopback. The broker's leases are short (1 s)
and heartbeats quick, so the link cut below heals within seconds.

Checks: every acknowledged number gets exactly one correct verdict
(lost = duplicated = unexpected = wrong = 0), all three workers tested
some, and unplugging one worker from the bridge for 3 s mid-run loses
nothing: what it held is pushed again to the others when its lease ends.

A third scenario is the same four worker hosts sieving one range (count
only): its pieces spread over all four, and the count is right.

A second scenario is the scale picture: the broker (with a journal) on one
host and four worker hosts, each one thread, at batch 1024: the work
spreads over all four (by their names in the broker's JSON stats), nothing
is lost, and the broker's CPU time per number is printed (a measured
figure; bench/pipeline.py derives from such figures how many worker cores
one broker core feeds).
"""
import json
import os
import re
import time

import harness
import netns
from harness import Cluster, check, count_lines, read_numbers, read_records

TOTAL = 3000            # numbers the source sends...
RATE = 300              # ...at this rate: a 10 s run
CUT_AT, CUT_FOR = 3.0, 3.0
HEARTBEAT = ["--heartbeat-ms", 250]


def tested(worker):
    """The count in the worker's exit line 'worker: tested N numbers'."""
    found = re.findall(r"worker: tested (\d+) numbers", worker.log())
    assert found, "%s: no exit summary:\n%s" % (worker.name, worker.log())
    return int(found[-1])


def test_three_workers_on_three_hosts_and_a_cut_link():
    with netns.Network() as net, Cluster("netns") as c:
        for name in ("broker", "worker1", "worker2", "worker3", "client"):
            net.add_host(name)
        broker = c.start("broker", "--lease-ms", 1000, "--heartbeat-timeout-ms", 1000,
                         "--stats", 0, *HEARTBEAT, prefix=net.exec_prefix("broker"))
        # Default endpoints: the broker binds tcp://*:5555-5559 in its host.
        assert len(broker.wait_for_log(r"endpoint bound to tcp://\S+:555\d", count=5)) == 5
        workers = [c.start("worker", "--broker", "broker", "--threads", 1, *HEARTBEAT,
                           name=host, prefix=net.exec_prefix(host))
                   for host in ("worker1", "worker2", "worker3")]
        verdicts = c.path("verdicts.txt")
        sink = c.start("sink", "--broker", "broker", "--tags", "PC",
                       stdout=verdicts, prefix=net.exec_prefix("client"))
        broker.wait_for_log(r"sink subscribed", count=2)
        for worker in workers:
            worker.wait_for_log(r"threads pulling")
        time.sleep(0.5)         # let the three connect before work flows

        acked_path = c.path("acked.txt")
        started = time.monotonic()
        source = c.start("source", "--broker", "broker", "--count", TOTAL,
                         "--rate", RATE, "--acked", acked_path, *HEARTBEAT,
                         prefix=net.exec_prefix("client"))
        time.sleep(CUT_AT)
        before = count_lines(verdicts)
        net.cut("worker2")
        time.sleep(CUT_FOR)
        net.mend("worker2")
        during = count_lines(verdicts)
        assert during > before, "no verdicts at all while worker2 was cut off"

        assert source.wait(60) == 0, source.log()
        acked = read_numbers(acked_path)
        assert len(acked) == TOTAL, source.log()
        # Every verdict, then a little more than a lease, for late duplicates.
        lines = harness.wait_for_lines(verdicts, TOTAL, 30)
        time.sleep(1.5)
        elapsed = time.monotonic() - started
        for proc in [sink] + workers + [broker]:
            assert proc.stop(timeout=5) == 0, "%s:\n%s" % (proc.name, proc.log())

        verdict = check(acked, read_records(verdicts))
        counts = {w.name: tested(w) for w in workers}
        final = re.findall(r"final: .*redispatched (\d+)", broker.log())
        assert final, broker.log()
        harness.report("netns", verdict, seconds="%.1f" % elapsed,
                       redispatched=final[-1], **counts)
        assert lines >= TOTAL, "only %d of %d verdicts:\n%s" % (lines, TOTAL, broker.log())
        assert verdict.lost == verdict.duplicated == 0, (verdict, broker.log())
        assert verdict.unexpected == verdict.wrong == 0, verdict
        for name, count in counts.items():
            assert count > 0, "%s tested nothing: %s" % (name, counts)
        # What was pushed into the dead link came back when its lease ended.
        assert int(final[-1]) > 0, "the cut stranded nothing:\n%s" % broker.log()


def cpu_seconds(pid):
    """User + system CPU time of a running process, from /proc."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_four_worker_hosts_share_the_work():
    total = 2000000
    with netns.Network() as net, Cluster("netns-scale") as c:
        for name in ("broker", "w1", "w2", "w3", "w4", "client"):
            net.add_host(name)
        stats = c.path("stats.json")
        broker = c.start("broker", "--journal", c.path("journal"), "--stats", 1,
                         "--stats-format", "json", stdout=stats,
                         prefix=net.exec_prefix("broker"))
        broker.wait_for_log(r"history endpoint bound")
        workers = [c.start("worker", "--broker", "broker", "--threads", 1, "--name", host,
                           name=host, prefix=net.exec_prefix(host))
                   for host in ("w1", "w2", "w3", "w4")]
        verdicts = c.path("verdicts.txt")
        sink = c.start("sink", "--broker", "broker", "--tags", "PC", stdout=verdicts,
                       prefix=net.exec_prefix("client"))
        broker.wait_for_log(r"sink subscribed", count=2)
        for worker in workers:
            worker.wait_for_log(r"threads pulling")
        acked_path = c.path("acked.txt")
        cpu_before = cpu_seconds(broker.pid)
        started = time.monotonic()
        source = c.start("source", "--broker", "broker", "--count", total,
                         "--batch", 1024, "--acked", acked_path,
                         "--min", 2, "--max", 2**63 - 1, prefix=net.exec_prefix("client"))
        assert source.wait(120) == 0, source.log()
        lines = harness.wait_for_lines(verdicts, total, 120)
        elapsed = time.monotonic() - started
        broker_cpu = cpu_seconds(broker.pid) - cpu_before
        time.sleep(1.2)                     # one more stats line
        for proc in [sink] + workers + [broker]:
            assert proc.stop(timeout=10) == 0, "%s:\n%s" % (proc.name, proc.log())
        verdict = harness.verify([acked_path], [verdicts])
        with open(stats) as handle:
            final = [json.loads(line) for line in handle if line.strip()][-1]
        shares = {w["name"]: w["numbers"] for w in final["workers"]}
        harness.report("netns_scale", verdict, seconds="%.1f" % elapsed,
                       numbers_per_s="%.0f" % (total / elapsed),
                       broker_ns_per_number="%.0f" % (broker_cpu * 1e9 / total),
                       **shares)
        assert lines >= total, "only %d of %d verdicts" % (lines, total)
        assert verdict.lost == verdict.duplicated == 0, verdict
        assert verdict.unexpected == verdict.wrong == 0, verdict
        assert sorted(shares) == ["w1", "w2", "w3", "w4"], shares
        for name, numbers in shares.items():
            assert numbers > total / 20, "%s did little: %s" % (name, shares)


def test_four_worker_hosts_share_a_range():
    """A counted range near 10^12, 8 * 10^9 numbers, from a client host:
    the broker cuts it into pieces of 2^27 that spread over four worker
    hosts (by their names in the broker's JSON stats: each sieved a fair
    share), and the count the source prints is the primesieve program's."""
    import shutil
    import subprocess
    if not shutil.which("primesieve"):
        raise harness.Skip("the primesieve program is not installed")
    lo, width = 10**12, 8 * 10**9
    hi = lo + width - 1
    expected = int(subprocess.run(["primesieve", str(lo), str(hi), "--count", "-q"],
                                  capture_output=True, text=True, check=True,
                                  timeout=120).stdout.split()[0])
    with netns.Network() as net, Cluster("netns-range") as c:
        for name in ("broker", "w1", "w2", "w3", "w4", "client"):
            net.add_host(name)
        stats = c.path("stats.json")
        broker = c.start("broker", "--stats", 1, "--stats-format", "json", stdout=stats,
                         prefix=net.exec_prefix("broker"))
        broker.wait_for_log(r"history endpoint bound")
        workers = [c.start("worker", "--broker", "broker", "--threads", 1, "--name", host,
                           name=host, prefix=net.exec_prefix(host))
                   for host in ("w1", "w2", "w3", "w4")]
        for worker in workers:
            worker.wait_for_log(r"threads pulling")
        counts = c.path("counts.txt")
        started = time.monotonic()
        source = c.start("source", "--broker", "broker", "--range", "%d:%d" % (lo, hi),
                         "--count-only", stdout=counts, prefix=net.exec_prefix("client"))
        assert source.wait(180) == 0, source.log()
        elapsed = time.monotonic() - started
        time.sleep(1.2)                     # one more stats line
        for proc in workers + [broker]:
            assert proc.stop(timeout=10) == 0, "%s:\n%s" % (proc.name, proc.log())
        with open(counts) as handle:
            printed = handle.read()
        with open(stats) as handle:
            final = [json.loads(line) for line in handle if line.strip()][-1]
        shares = {w["name"]: w["numbers"] for w in final["workers"]}
        pieces = {w["name"]: w["reports"] for w in final["workers"]}
        print("netns_range: %d numbers in %.1f s (%.0f numbers/s), count %s, numbers "
              "sieved %s, pieces %s" % (width, elapsed, width / elapsed, printed.split(),
                                        shares, pieces), flush=True)
        assert printed == "%d:%d %d\n" % (lo, hi, expected), printed
        assert sorted(shares) == ["w1", "w2", "w3", "w4"], shares
        assert sum(shares.values()) == width, shares
        for name, numbers in shares.items():
            assert numbers > width / 20, "%s did little: %s" % (name, shares)


if __name__ == "__main__":
    harness.run_tests(globals())
