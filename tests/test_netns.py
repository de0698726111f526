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
"""
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


if __name__ == "__main__":
    harness.run_tests(globals())
