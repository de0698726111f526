"""Fault tests: the real executables while workers die, freeze, the broker
crashes or is stopped, a sink stalls, and a peer sends malformed reports.

Each scenario runs a reference sink (--tags PC) that is subscribed before
the first publish, sources that record every acknowledged number (--acked),
and the checker from harness.py, which counts lost (acked, no result),
duplicated (more results than acks), unexpected (a result never acked) and
wrong (verdict differs from an independent test). Every scenario prints its
counts on one line and fails on any count it does not expect:

1. worker_kill9      a worker is kill -9'ed and restarted every 2 s (every
                     other victim hangs 0.3 s first, so it dies holding
                     leased work): all 0.
2. worker_sigstop    a worker frozen 10 s, still connected: its leases are
                     redone elsewhere, its late reports acked as
                     duplicates: all 0.
3. broker_kill9      the broker is kill -9'ed and restarted twice on the same
                     endpoints: sources and workers finish without restart;
                     wrong = unexpected = 0, lost and duplicated at most
                     (max-inflight + batch) per crash. The workers hang until
                     a stats line shows what is in flight, then the broker
                     is killed (so each crash takes work, and the workers
                     have dispatches queued, as under load). The sources are frozen
                     (SIGSTOP) from the crash until the new broker has logged
                     the reference sink's subscription, so that nothing is
                     published while that sink is still reconnecting (such a
                     gap would be the sink's, not the broker's).
4. broker_sigterm    SIGTERM on the broker mid-run: it drains, exits 0 with
                     inflight 0, and every acked number has its result. The
                     sources are left alone: the broker stops answering them,
                     so each gives up after its --timeout/--retries and exits
                     1 ("is the broker running?"); what they had acked is
                     complete in their --acked files.
5. slow_sink         a second sink whose stdout (a FIFO) nobody reads for 6 s
                     while 600,000 verdicts flow: once its queue, the
                     kernel's buffers and the broker's --publish-hwm are
                     full, PUB drops its messages (expected, counted,
                     printed as gaps; it has no history to fill them
                     from); the slow sink survives and prints only true
                     verdicts; the reference sink gets everything (from
                     history, with the broker's journal, should a moment's
                     hiccup cost it a message), long before the stall ends.
6. malformed_reports reports with a wrong id, count, values, order or tags
                     get the documented E code and change nothing; a real
                     worker then completes the dispatch: all 0. The real
                     dispatch id is learned from the broker's -v line when
                     the lease of a dispatch held by a frozen worker runs out.

Brokers bind private ports (harness.private_endpoints), so that clients
that outlive their broker never meet another test's broker, and a restarted
broker gets its ports back. Timings have generous margins: the machine has
2 cores shared with other work, so nothing here depends on a step finishing
within tens of ms.
"""
import os
import re
import signal
import threading
import time

import harness
from harness import (Cluster, check, count_lines, private_endpoints, rawreq,
                     read_numbers, read_records, record_hex, report_hex,
                     sink_endpoints)

WIDE = ("--min", 2, "--max", 4000000000000000000)

STATS = re.compile(
    r"broker: (final: )?accepted (\d+) dispatched (\d+) redispatched (\d+) "
    r"results (\d+) duplicates (\d+) inflight (\d+) retries (\d+) errors (\d+)")
FIELDS = ("accepted", "dispatched", "redispatched", "results", "duplicates",
          "inflight", "retries", "errors")


def stats_lines(broker):
    """The broker's stats lines so far, as dicts (plus 'final': bool)."""
    lines = []
    for match in STATS.finditer(broker.log()):
        line = dict(zip(FIELDS, (int(v) for v in match.groups()[1:])))
        line["final"] = bool(match.group(1))
        lines.append(line)
    return lines


def final_stats(broker):
    finals = [line for line in stats_lines(broker) if line["final"]]
    assert finals, "%s logged no final stats line:\n%s" % (broker.name, broker.log())
    return finals[-1]


def stop_cleanly(workers, broker):
    """Stops the workers, then the broker; each must still be running and
    exit 0. Returns the broker's final stats."""
    for worker in workers:
        assert worker.alive(), worker.log()
        assert worker.stop() == 0, worker.log()
    assert broker.stop() == 0, broker.log()
    return final_stats(broker)


def start_reference_sink(c, broker, ep, name="sink-ref"):
    """A --tags PC text sink, subscribed (both tags) before returning."""
    out = c.path(name + ".txt")
    before = len(re.findall(r"sink subscribed", broker.log()))
    sink = c.start("sink", *sink_endpoints(ep), "--tags", "PC",
                   "--format", "text", name=name, stdout=out)
    broker.wait_for_log(r"sink subscribed", count=before + 2, timeout=15)
    return sink, out


def start_workers(c, ep, count, *extra):
    return [c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"],
                    "--threads", 1, *extra) for _ in range(count)]


def start_sources(c, ep, count, *args):
    sources, paths = [], []
    for index in range(count):
        path = c.path("acked-%d.txt" % (index + 1))
        sources.append(c.start("source", "--connect", ep["source"], "--acked", path,
                               *WIDE, *args))
        paths.append(path)
    return sources, paths


def wait_all(procs, timeout):
    """Waits for every proc; returns their exit codes."""
    deadline = time.monotonic() + timeout
    return [p.wait(max(0.1, deadline - time.monotonic())) for p in procs]


def acked_numbers(paths):
    numbers = []
    for path in paths:
        numbers += read_numbers(path)
    return numbers


def collect(sink, out, expected, timeout=30, settle=0.5):
    """Waits until the sink printed at least expected lines (or timeout),
    lets late duplicates arrive for settle seconds, stops the sink and
    returns its records."""
    harness.wait_for_lines(out, expected, timeout)
    time.sleep(settle)
    assert sink.stop() == 0, sink.log()
    return read_records(out)


def assert_clean(verdict):
    assert verdict.lost == verdict.duplicated == verdict.unexpected == verdict.wrong == 0, verdict
    assert verdict.acked > 0 and verdict.results == verdict.acked, verdict


# ---------------------------------------------------------------------------
# 1. kill -9 a worker every 2 s

def test_worker_kill9_every_2s():
    per_source, rate = 50000, 5000          # 2 sources: 100,000 numbers in ~10 s
    with Cluster("fault-kill9") as c:
        broker, ep = c.start_broker("--stats", 1, "--lease-ms", 1000,
                                    endpoints=private_endpoints())
        sink, out = start_reference_sink(c, broker, ep)
        opts = ("--timeout", 2000, "--retries", 10)
        workers = start_workers(c, ep, 4, *opts)
        sources, paths = start_sources(c, ep, 2, "--count", per_source, "--batch", 10,
                                       "--rate", rate, "--pipeline", 2,
                                       "--timeout", 3000, "--retries", 10)
        kills, victim = 0, 0
        deadline = time.monotonic() + 60
        next_kill = time.monotonic() + 2
        while any(s.alive() for s in sources) and time.monotonic() < deadline:
            time.sleep(0.05)
            if time.monotonic() < next_kill:
                continue
            next_kill += 2
            if kills % 2:
                # Every other victim hangs a moment first, so that it surely
                # dies holding leased work (an idle worker may hold none).
                workers[victim].signal(signal.SIGSTOP)
                time.sleep(0.3)
            workers[victim].kill()
            workers[victim] = start_workers(c, ep, 1, *opts)[0]
            victim = (victim + 1) % len(workers)
            kills += 1
        assert wait_all(sources, 5) == [0, 0], [s.log() for s in sources]
        acked = acked_numbers(paths)
        assert len(acked) == 2 * per_source
        records = collect(sink, out, len(acked))
        final = stop_cleanly(workers, broker)
        verdict = check(acked, records)
        harness.report("worker_kill9", verdict, kills=kills,
                       redispatched=final["redispatched"], duplicates=final["duplicates"],
                       inflight=final["inflight"])
        assert kills >= 3, "the run was too short for several kills (%d)" % kills
        assert_clean(verdict)
        assert final["redispatched"] > 0, "no killed worker held work"
        assert final["inflight"] == 0, final


# ---------------------------------------------------------------------------
# 2. SIGSTOP a worker for 10 s

def test_worker_sigstop_10s():
    with Cluster("fault-sigstop") as c:
        # The frozen worker stays connected, so it surely comes back with
        # late reports: its dispatch connection carries no ZMTP heartbeats
        # (TCP keepalive is answered by the kernel, frozen or not), and on
        # its results connection the broker's heartbeat timeout is above
        # the freeze and the victim sends no heartbeats of its own. With the
        # default 3 s that connection would be dropped, the report the
        # victim had in flight with it. Meanwhile the broker keeps pushing
        # to the victim (1 push in 5), and every such lease runs out and is
        # pushed again.
        broker, ep = c.start_broker("--stats", 1, "--lease-ms", 1000,
                                    "--heartbeat-timeout-ms", 15000,
                                    endpoints=private_endpoints())
        sink, out = start_reference_sink(c, broker, ep)
        opts = ("--timeout", 1000, "--retries", 30)
        victim = start_workers(c, ep, 1, *opts, "--heartbeat-ms", 0)[0]
        workers = [victim] + start_workers(c, ep, 4, *opts)
        # ~3 s of work: the freeze starts at 2 s, so work keeps coming in
        # for 1 s while the victim is frozen, and leases pushed to it have
        # 9 s to bounce to another worker (1 in 5 goes to it again).
        sources, paths = start_sources(c, ep, 2, "--count", 6000, "--batch", 10,
                                       "--rate", 2000, "--pipeline", 2,
                                       "--timeout", 3000, "--retries", 10)
        time.sleep(2)
        victim.signal(signal.SIGSTOP)
        frozen_at = time.monotonic()
        assert wait_all(sources, 30) == [0, 0], [s.log() for s in sources]
        acked = acked_numbers(paths)
        # Everything is done by the other workers while the victim sleeps.
        harness.wait_for_lines(out, len(acked), max(1, 9.5 - (time.monotonic() - frozen_at)))
        lines_while_frozen = count_lines(out)
        time.sleep(max(0, 10 - (time.monotonic() - frozen_at)))
        at_resume = stats_lines(broker)[-1]
        victim.signal(signal.SIGCONT)
        # Its late reports come in and are acked as duplicates.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and stats_lines(broker)[-1]["duplicates"] == 0:
            time.sleep(0.2)
        time.sleep(1.5)
        records = collect(sink, out, len(acked), timeout=5)
        final = stop_cleanly(workers, broker)
        verdict = check(acked, records)
        harness.report("worker_sigstop", verdict, redispatched=final["redispatched"],
                       duplicates=final["duplicates"], victim_reports=victim_reports(victim),
                       results_while_frozen=lines_while_frozen)
        assert_clean(verdict)
        assert lines_while_frozen == len(acked), "not all done while the worker was frozen"
        assert at_resume["redispatched"] > 0, "the frozen worker's leases were not redispatched"
        assert at_resume["duplicates"] == 0, at_resume
        assert final["duplicates"] > 0, "no late report was counted as a duplicate"
        assert final["inflight"] == 0, final


def victim_reports(worker):
    """Reports the worker got acked, from its final line (0 while running)."""
    found = re.findall(r"tested \d+ numbers in (\d+) reports", worker.log())
    return int(found[-1]) if found else 0


# ---------------------------------------------------------------------------
# 3. kill -9 the broker twice, restart it on the same endpoints

def test_broker_kill9_restart_twice():
    max_inflight, batch = 8000, 100
    with Cluster("fault-broker-kill9") as c:
        broker_args = ("--stats", 1, "--lease-ms", 1000, "--max-inflight", max_inflight,
                       "--drain-ms", 10000)
        broker, ep = c.start_broker(*broker_args, endpoints=private_endpoints())
        sink, out = start_reference_sink(c, broker, ep)
        workers = start_workers(c, ep, 2, "--timeout", 1000, "--retries", 30)
        # 4000 numbers/s: even a 1.5 s hang before a crash leaves the window
        # (8000) below full, so a crash takes what the stats line shows.
        sources, paths = start_sources(c, ep, 2, "--count", 20000, "--batch", batch,
                                       "--rate", 2000, "--pipeline", 2,
                                       "--timeout", 1000, "--retries", 30)
        crashes = []
        for _ in range(2):
            time.sleep(3)
            assert all(s.alive() for s in sources), "sources ended before the crash"
            assert_workers_alive(workers)
            # Workers hang a moment first, so that the broker surely dies
            # with work in flight (at this rate it is otherwise idle) and
            # the workers with work queued, as under a heavy load. The kill
            # follows the first stats line logged while they hang, so that
            # line's inflight is (nearly) what the crash takes.
            for w in workers:
                w.signal(signal.SIGSTOP)
            seen = len(stats_lines(broker))
            broker.wait_for_log(STATS.pattern, count=seen + 1, timeout=10)
            last = stats_lines(broker)[-1]
            for w in workers:
                w.signal(signal.SIGCONT)
            broker.kill()
            # Freeze the sources until the reference sink is subscribed to
            # the new broker: results published before that are the sink's
            # gap, not the broker's loss.
            for s in sources:
                s.signal(signal.SIGSTOP)
            broker, _ = c.start_broker(*broker_args, endpoints=ep)
            broker.wait_for_log(r"sink subscribed", count=2, timeout=15)
            for s in sources:
                s.signal(signal.SIGCONT)
            crashes.append(last["inflight"])
        time.sleep(2)
        assert_workers_alive(workers)
        codes = wait_all(sources, 60)
        assert codes == [0, 0], [s.log() for s in sources]
        assert_workers_alive(workers)
        # Drain what the last broker holds, then stop everything.
        assert broker.stop(timeout=15) == 0, broker.log()
        final = final_stats(broker)
        time.sleep(0.5)
        assert sink.stop() == 0, sink.log()
        for worker in workers:
            assert worker.stop() == 0, worker.log()
        acked = acked_numbers(paths)
        verdict = check(acked, read_records(out))
        bound = len(crashes) * (max_inflight + batch)
        harness.report("broker_kill9", verdict, bound=bound,
                       inflight_at_each_kill=crashes,
                       final_inflight=final["inflight"],
                       worker_rejected=sum(worker_rejected(w) for w in workers))
        assert len(acked) == 40000, len(acked)
        assert verdict.wrong == 0 and verdict.unexpected == 0, verdict
        assert verdict.lost <= bound and verdict.duplicated <= bound, verdict
        assert sum(crashes) > 0, "no crash caught work in flight"
        assert final["inflight"] == 0, final


def assert_workers_alive(workers):
    """Fails with the worker's log tail (and exit status) if one ended."""
    for worker in workers:
        if not worker.alive():
            tail = "\n".join(worker.log().splitlines()[-3:])
            raise AssertionError("%s ended (exit %s) during the broker restarts:\n%s"
                                 % (worker.name, worker.popen.returncode, tail))


def worker_rejected(worker):
    found = re.findall(r"(\d+) reports rejected", worker.log())
    return int(found[-1]) if found else 0


# ---------------------------------------------------------------------------
# 4. SIGTERM on the broker mid-run

def test_broker_sigterm_drains():
    with Cluster("fault-sigterm") as c:
        broker, ep = c.start_broker("--stats", 1, "--lease-ms", 5000,
                                    "--max-inflight", 20000, "--drain-ms", 10000,
                                    endpoints=private_endpoints())
        sink, out = start_reference_sink(c, broker, ep)
        workers = start_workers(c, ep, 2, "--timeout", 1000, "--retries", 5)
        sources, paths = start_sources(c, ep, 2, "--count", 10**9, "--batch", 10,
                                       "--rate", 5000, "--pipeline", 2,
                                       "--timeout", 500, "--retries", 2)
        time.sleep(2)
        # The workers hang for a while around the SIGTERM, so that the
        # broker has work in flight (~10,000 numbers, half its window) to
        # drain, and must wait for it.
        for worker in workers:
            worker.signal(signal.SIGSTOP)
        time.sleep(1)
        broker.signal(signal.SIGTERM)
        broker.wait_for_log(r"interrupted, taking no new numbers")
        time.sleep(0.5)
        for worker in workers:
            worker.signal(signal.SIGCONT)
        assert broker.wait(15) == 0, broker.log()
        final = final_stats(broker)
        drained = int(re.findall(r"waiting up to \d+ ms for (\d+) in flight",
                                 broker.log())[-1])
        # With no broker the sources give up (exit 1), their acks flushed.
        codes = wait_all(sources, 15)
        for source in sources:
            assert "is the broker running?" in source.log(), source.log()
        acked = acked_numbers(paths)
        records = collect(sink, out, len(acked), timeout=10)
        for worker in workers:
            worker.stop()
        verdict = check(acked, records)
        harness.report("broker_sigterm", verdict, inflight_at_sigterm=drained,
                       final_inflight=final["inflight"], source_exits=codes)
        assert codes == [1, 1], codes
        assert_clean(verdict)
        assert final["inflight"] == 0 and final["accepted"] == final["results"], final
        assert drained > 0, "nothing was in flight: the drain was not exercised"


# ---------------------------------------------------------------------------
# 5. A slow sink

def test_slow_sink_does_not_hold_back_others():
    stall = 8.0                 # seconds nobody reads the slow sink's stdout
    with Cluster("fault-slow-sink") as c:
        # Small queues on both sides of the slow sink's connection (the
        # reference sink gets the same --publish-hwm): what the kernel's
        # socket buffers cannot hold beyond them must be dropped.
        # The broker keeps a journal, so that the reference sink, which
        # shares the tight --publish-hwm, fills from history any message a
        # moment's hiccup of this busy machine costs it; the slow sink is
        # given no history, so that what it loses stays lost (and counted).
        broker, ep = c.start_broker("--stats", 1, "--publish-hwm", 20,
                                    "--journal", c.path("journal"),
                                    endpoints=private_endpoints())
        sink, out = start_reference_sink(c, broker, ep)
        # The slow sink writes into a FIFO whose reader waits `stall` seconds
        # before it reads: the sink blocks on its full stdout (the 1 MiB it
        # asks a pipe for), its SUB queue fills, then the kernel's buffers,
        # and the broker's PUB drops what does not fit at its high-water
        # mark.
        fifo = c.path("slow.fifo")
        os.mkfifo(fifo)
        reader_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        slow_out = c.path("sink-slow.txt")
        before = len(re.findall(r"sink subscribed", broker.log()))
        slow = c.start("sink", "--connect", ep["publish"], "--history", "none",
                       "--tags", "PC", "--format", "text", "--hwm", 20,
                       name="sink-slow", stdout=fifo)
        broker.wait_for_log(r"sink subscribed", count=before + 2, timeout=15)
        reader = threading.Thread(target=copy_after, args=(reader_fd, slow_out, stall))
        reader.start()
        try:
            workers = start_workers(c, ep, 2)
            started = time.monotonic()
            # 1,800,000 numbers, 16 MB of verdicts: about three times what
            # the pipe, the queues and the kernel's socket buffers (up to 4
            # MiB sending, and little receiving for a reader that never
            # read) can hold for the slow sink (600,000 were 5.4 MB, and
            # lost nothing once the sink asked for a 1 MiB pipe), done in
            # a few seconds, before the stall ends. Small values keep the
            # independent check fast.
            sources, paths = start_sources(c, ep, 2, "--count", 900000, "--batch", 1000,
                                           "--max", 1000000, "--pipeline", 2)
            time.sleep(2)
            # The broker still serves while the slow sink holds up its share.
            assert rawreq(ep["source"], record_hex("N", 97)) == [("A", 1)]
            assert wait_all(sources, 60) == [0, 0], [s.log() for s in sources]
            acked = acked_numbers(paths) + [97]
            records = collect(sink, out, len(acked), timeout=30)
            reference_done = time.monotonic() - started
            # Once read again, the slow sink prints what reached it; wait
            # until it stops growing.
            time.sleep(max(0, stall - (time.monotonic() - started)))
            previous, lines = -1, 0
            while lines != previous:
                previous = lines
                time.sleep(1)
                lines = count_lines(slow_out)
            assert slow.alive(), "the slow sink ended by itself (exit %s):\n%s" % (
                slow.popen.returncode, slow.log())
            assert slow.stop() == 0, slow.log()
        finally:
            slow.signal(signal.SIGKILL)
            reader.join(10)
        for worker in workers:
            worker.stop()
        assert broker.stop() == 0, broker.log()
        verdict = check(acked, records)
        slow_verdict = check(acked, read_records(slow_out))
        harness.report("slow_sink reference", verdict,
                       complete_after_s="%.1f" % reference_done)
        harness.report("slow_sink slow", slow_verdict, gaps=slow_verdict.lost,
                       stalled_s=stall)
        assert_clean(verdict)
        assert reference_done < stall, "the reference sink waited for the slow one"
        assert slow_verdict.duplicated == slow_verdict.unexpected == slow_verdict.wrong == 0
        assert slow_verdict.lost > 0, "the slow sink lost nothing: not slow enough to test"


def copy_after(fd, path, delay):
    """Waits delay seconds, then copies from fd (non-blocking) to path
    until end of file (the writer exited); closes fd."""
    time.sleep(delay)
    os.set_blocking(fd, True)
    with open(path, "wb") as out:
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            out.write(data)
            out.flush()
    os.close(fd)


# ---------------------------------------------------------------------------
# 6. Malformed reports

def test_malformed_reports_change_nothing():
    with Cluster("fault-malformed") as c:
        # -v: the broker logs a dispatch id when its lease runs out.
        broker, ep = c.start_broker("--stats", 0, "--lease-ms", 300, "-v",
                                    endpoints=private_endpoints())
        sink, out = start_reference_sink(c, broker, ep)
        # A worker that will hold the dispatch, frozen, so we learn its id.
        holder = start_workers(c, ep, 1)[0]
        holder.wait_for_log(r"threads pulling")
        # A first number proves the holder's PULL is attached (it is the
        # only worker); then it is frozen.
        assert rawreq(ep["source"], record_hex("N", 1000003)) == [("A", 1)]
        assert harness.wait_for_lines(out, 1, 15) == 1
        holder.signal(signal.SIGSTOP)

        numbers = [97, 91, 2**61 - 1]
        verdicts = [("P" if harness.is_prime(n) else "C") for n in numbers]
        assert rawreq(ep["source"], "".join(record_hex("N", n) for n in numbers)) == [("A", 3)]
        found = broker.wait_for_log(r"lease of dispatch (\d+) ran out", timeout=15)
        real = int(found[0])

        def report(*records):
            return "".join(record_hex(tag, value) for tag, value in records)

        primes = [harness.is_prime(n) for n in numbers]
        bits = sum(1 << i for i, p in enumerate(primes) if p)
        good = report_hex(real, primes)
        old = [("I", real)] + list(zip(verdicts, numbers))
        cases = [
            ("a verdict past the count", [report_hex(real, primes + [True])], 7),
            ("the last of 64 bits", [report(("I", real), ("V", bits | 1 << 63))], 7),
            ("a second V record", [good + record_hex("V", 0)], 7),
            ("the old format, values echoed", [report(*old)], 15),
            ("the old format, all composite", [report(old[0], *[("C", v) for v in numbers])], 15),
            ("the old format, one record short", [report(*old[:-1])], 15),
            ("N tags", [report(old[0], *[("N", v) for v in numbers])], 4),
            ("an A tag", [report(old[0], ("A", 97))], 4),
            ("an E tag", [report(old[0], ("E", 97))], 4),
            ("an unknown tag", [report(old[0], ("Z", 97))], 3),
            ("a NUL tag", [report(old[0], ("\0", 97))], 3),
            ("I not first", [report(("V", bits), old[0])], 8),
            ("two I records", [report(old[0], old[0], ("V", bits))], 8),
            ("I alone", [report(old[0])], 8),
            ("no I record", [report(("V", bits))], 8),
            ("id never issued (next sequence)", [report_hex(real + 1, primes)], 6),
            ("id far ahead", [report_hex(real + 2**20, primes)], 6),
            ("id of another incarnation", [report_hex(real ^ (1 << 45), primes)], 6),
            ("id 0", [report_hex(0, primes)], 6),
            ("negative id", [report_hex(-real, primes)], 6),
            ("good report in two frames", [record_hex("I", real), good[18:]], 5),
            ("good report plus an empty frame", [good, "-"], 5),
            ("a stray byte", [good + "00"], 1),
            ("empty", ["-"], 1),
            ("an id and 4097 records", [report(old[0]) + record_hex("V", 0) * 4097], 2),
        ]
        for what, frames, code in cases:
            got = rawreq(ep["results"], *frames)
            assert got == [("E", code)], "%s: %s, expected E %d" % (what, got, code)
        # Nothing was published and nothing completed.
        time.sleep(0.5)
        assert count_lines(out) == 1, "a malformed report published"

        # A real worker completes the dispatch; the holder's copy dies with it.
        holder.kill()
        worker = start_workers(c, ep, 1)[0]
        assert harness.wait_for_lines(out, 4, 15) == 4
        # Now a correct report for the completed dispatch is a duplicate.
        assert rawreq(ep["results"], good) == [("A", 3)]
        time.sleep(0.5)
        assert worker.stop() == 0, worker.log()
        assert broker.stop() == 0, broker.log()
        final = final_stats(broker)
        records = collect(sink, out, 4, timeout=1, settle=0)
        verdict = check([1000003] + numbers, records)
        harness.report("malformed_reports", verdict, rejected=len(cases),
                       errors=final["errors"], duplicates=final["duplicates"])
        assert_clean(verdict)
        assert final["errors"] == len(cases), final
        assert final["results"] == 4 and final["duplicates"] == 3, final
        assert final["inflight"] == 0 and final["accepted"] == 4, final


if __name__ == "__main__":
    harness.run_tests(globals())
