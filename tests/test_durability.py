"""Durability tests: the verdict log (broker --journal), sequence numbers,
history and resumable sinks, with the real executables.

1. broker_kill9_journal  the broker is kill -9'ed twice mid-run and
                         restarted on the same endpoints and journal. One
                         text sink stays up through both restarts and fills
                         what it missed from history: lost 0, duplicated 0,
                         unexpected 0, wrong 0 on that sink's output, and
                         every acknowledged number in it exactly once.
2. text_sink_20m         20,000,000 numbers at full speed (batch 1024,
                         pipeline 8) into a text sink writing a file: the
                         file holds every acknowledged number exactly once
                         with the right verdict (tests/verify.c, reference
                         Miller-Rabin), however far the sink fell behind.
3. sink_kill9_resume     a sink with --resume is kill -9'ed twice mid-run and
                         started again, each time into a new file: the
                         concatenated files hold every verdict exactly once.
4. journal_damage        a journal copy cut at 100 random offsets, and 100
                         copies with a random byte flipped: the broker
                         either starts (and then serves only publications
                         the undamaged journal has, and dispatches again
                         only numbers it had accepted) or refuses with a
                         message naming the file and offset; it never
                         crashes.
5. disk_full             the journal on a small tmpfs that fills up: the
                         broker refuses with E 9 and says so, sources wait
                         and send again, nothing acknowledged is lost, and
                         the run completes once space is freed. Skipped
                         where mounting is not permitted.
6. no_journal_gaps       without a journal a sink that falls behind reports
                         its gaps (stderr and summary), and --strict makes
                         them an error (exit 3).
7. work_before_the_sync  with every fdatasync of the broker held 2 s
                         (strace's fault injection), a worker has tested a
                         source's numbers while the source still waits for
                         its ack: accepted numbers are dispatched once
                         written, and only the ack and the publications wait
                         for the sync. Then the ack, and the verdicts, do
                         come. Skipped without strace or ptrace.

Brokers bind private ports (harness.private_endpoints) so that a restarted
broker gets its ports back and clients of an earlier test never meet it.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import harness
from harness import Cluster, private_endpoints, sink_endpoints

WIDE = ("--min", 2, "--max", 2**63 - 1)


def start_workers(c, ep, count, *extra):
    return [c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"],
                    "--threads", 1, "--name", "w%d" % index, *extra)
            for index in range(count)]


def start_sink(c, broker, ep, name, *extra):
    """A text sink on P and C that fills gaps from history; subscribed to
    both tags before returning. Returns (proc, output path)."""
    out = c.path(name + ".txt")
    before = len(re.findall(r"sink subscribed", broker.log()))
    sink = c.start("sink", *sink_endpoints(ep),
                   "--tags", "PC", "--format", "text", *extra, name=name, stdout=out)
    broker.wait_for_log(r"sink subscribed", count=before + 2, timeout=15)
    return sink, out


def acked_total(paths):
    return sum(harness.count_lines(path) for path in paths)


def wait_complete(outputs, expected, timeout):
    """Waits until the outputs together hold expected lines."""
    deadline = time.monotonic() + timeout
    lines = 0
    while time.monotonic() < deadline:
        lines = sum(harness.count_lines(path) for path in outputs)
        if lines >= expected:
            return lines
        time.sleep(0.2)
    return lines


def assert_exact(verdict):
    assert verdict.lost == verdict.duplicated == verdict.unexpected == verdict.wrong == 0, verdict
    assert verdict.acked > 0 and verdict.results == verdict.acked, verdict


# ---------------------------------------------------------------------------
# 1. kill -9 the broker twice, with a journal

def test_broker_kill9_journal():
    with Cluster("durable-broker-kill9") as c:
        journal = c.path("journal")
        broker_args = ("--journal", journal, "--stats", 1, "--lease-ms", 1000,
                       "--drain-ms", 10000)
        broker, ep = c.start_broker(*broker_args, endpoints=private_endpoints(),
                                    name="broker")
        sink, out = start_sink(c, broker, ep, "sink")
        workers = start_workers(c, ep, 2, "--timeout", 1000, "--retries", 60)
        paths = [c.path("acked-%d.txt" % index) for index in range(2)]
        sources = [c.start("source", "--connect", ep["source"], "--acked", path, *WIDE,
                           "--count", 30000, "--batch", 100, "--rate", 3000,
                           "--pipeline", 4, "--timeout", 1000, "--retries", 60)
                   for path in paths]
        kills = []
        for _ in range(2):
            time.sleep(3)
            assert all(s.alive() for s in sources), "sources ended before the crash"
            # Hang the workers a moment, so that the crash finds work in
            # flight (acknowledged, no verdict yet): the journal's to keep.
            for worker in workers:
                worker.signal(signal.SIGSTOP)
            time.sleep(0.8)
            kills.append(acked_total(paths))
            broker.kill()
            for worker in workers:
                worker.signal(signal.SIGCONT)
            time.sleep(0.5)
            broker, _ = c.start_broker(*broker_args, endpoints=ep, name="broker")
        codes = [s.wait(90) for s in sources]
        assert codes == [0, 0], [s.log() for s in sources]
        recovered = [int(n) for n in re.findall(
            r"(\d+) acknowledged numbers without verdict dispatched again", broker.log())]
        expected = acked_total(paths)
        lines = wait_complete([out], expected, 60)
        assert broker.stop(timeout=15) == 0, broker.log()
        for worker in workers:
            worker.stop()
        time.sleep(0.5)
        sink.stop()
        verdict = harness.verify(paths, [out])
        harness.report("broker_kill9_journal", verdict, sink_lines=lines,
                       recovered_at_restarts=recovered[1:], acked_at_kills=kills)
        assert expected == 60000, expected
        assert_exact(verdict)
        assert sum(recovered) > 0, "no crash caught acknowledged work in flight"


# ---------------------------------------------------------------------------
# 2. a text sink at full speed: 20M numbers, every one exactly once

def test_text_sink_20m():
    count = 20000000
    with Cluster("durable-text-sink-20m") as c:
        broker, ep = c.start_broker("--journal", c.path("journal"), "--stats", 5)
        sink, out = start_sink(c, broker, ep, "sink")
        workers = start_workers(c, ep, 2)
        acked = c.path("acked.txt")
        started = time.monotonic()
        source = c.start("source", "--connect", ep["source"], "--acked", acked, *WIDE,
                         "--count", count, "--batch", 1024, "--pipeline", 8)
        assert source.wait(300) == 0, source.log()
        pipeline_s = time.monotonic() - started
        lines = wait_complete([out], count, 300)
        sink_s = time.monotonic() - started
        sink.stop()
        for worker in workers:
            worker.stop()
        broker.stop()
        verdict = harness.verify([acked], [out])
        summary = [l for l in sink.log().splitlines() if "printed" in l]
        harness.report("text_sink_20m", verdict, pipeline_s="%.1f" % pipeline_s,
                       sink_done_s="%.1f" % sink_s, sink_lines=lines,
                       sink_summary=summary[-1:] if summary else None)
        assert_exact(verdict)
        for path in (out, acked, c.path("journal")):
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)


# ---------------------------------------------------------------------------
# 3. kill -9 a sink twice; --resume continues exactly after its last line

def test_sink_kill9_resume():
    with Cluster("durable-sink-resume") as c:
        broker, ep = c.start_broker("--journal", c.path("journal"), "--stats", 0)
        workers = start_workers(c, ep, 2)
        position = c.path("sink.pos")
        outputs = []
        sink, out = start_sink(c, broker, ep, "sink-1", "--resume", position)
        outputs.append(out)
        acked = c.path("acked.txt")
        source = c.start("source", "--connect", ep["source"], "--acked", acked, *WIDE,
                         "--count", 400000, "--batch", 100, "--rate", 80000)
        for run in (2, 3):
            time.sleep(1.5)
            assert source.alive(), "the source ended before the sink was killed"
            sink.kill()
            sink, out = start_sink(c, broker, ep, "sink-%d" % run, "--resume", position)
            outputs.append(out)
        assert source.wait(60) == 0, source.log()
        expected = harness.count_lines(acked)
        lines = wait_complete(outputs, expected, 60)
        time.sleep(0.5)
        sink.stop()
        for worker in workers:
            worker.stop()
        broker.stop()
        verdict = harness.verify([acked], outputs)
        harness.report("sink_kill9_resume", verdict, lines_per_run=[
            harness.count_lines(path) for path in outputs], total_lines=lines)
        assert all(harness.count_lines(path) > 0 for path in outputs[:2]), \
            "a killed sink printed nothing: the kill did not land mid-run"
        assert_exact(verdict)


# ---------------------------------------------------------------------------
# 4. a damaged journal: start or refuse, never crash, never invent

def make_journal(c, directory):
    """A journal with verdicts and with accepted numbers still waiting (the
    broker is killed with no worker running). Returns (publications the
    history served, values accepted)."""
    broker, ep = c.start_broker("--journal", directory, "--stats", 0, name="maker")
    workers = start_workers(c, ep, 1)
    acked = c.path("maker-acked.txt")
    source = c.start("source", "--connect", ep["source"], "--acked", acked, *WIDE,
                     "--count", 20000, "--batch", 50, "--pipeline", 4, name="maker-source")
    assert source.wait(60) == 0, source.log()
    workers[0].stop()
    source = c.start("source", "--connect", ep["source"], "--acked", acked + "2", *WIDE,
                     "--count", 3000, "--batch", 50, name="maker-source-2")
    assert source.wait(60) == 0, source.log()
    time.sleep(0.3)
    publications, _ = harness.history(ep["history"], "NPC")
    broker.kill()
    values = set(harness.read_numbers(acked)) | set(harness.read_numbers(acked + "2"))
    return publications, values


def try_damaged(c, directory, original, accepted, label):
    """Starts a broker on a damaged journal. Returns 'refused' or 'started';
    asserts it never crashed and never served or dispatched what the
    original did not have."""
    ep = private_endpoints()
    name = "broker-" + label
    proc = c.start("broker", "--journal", directory, "--stats", 0, "--drain-ms", 0,
                   "--source-bind", ep["source"], "--publish-bind", ep["publish"],
                   "--dispatch-bind", ep["dispatch"], "--results-bind", ep["results"],
                   "--history-bind", ep["history"], name=name)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not proc.alive() or "history endpoint bound" in proc.log():
            break
        time.sleep(0.02)
    if not proc.alive():
        code = proc.wait(5)
        log = proc.log()
        assert code == 1, "%s: exit %s (a crash?)\n%s" % (label, code, log)
        assert "cannot use journal" in log and re.search(r"\.pzj|offset|lock", log), \
            "%s: refused without naming the file and offset:\n%s" % (label, log)
        return "refused"
    assert "history endpoint bound" in proc.log(), proc.log()
    # What it serves is a prefix of what the undamaged journal served.
    served, _ = harness.history(ep["history"], "NPC")
    assert served == original[:len(served)], "%s: served publications the " \
        "original journal does not have" % label
    for tag, values, _, _ in served:
        for value in values:
            assert value in accepted, "%s: %s %d was never accepted" % (label, tag, value)
            if tag in "PC":
                assert (tag == "P") == harness.is_prime(value), (label, tag, value)
    # What it dispatches again was accepted (a worker-less PULL would be
    # needed to see it; the broker's count of recovered numbers is enough).
    recovered = re.findall(r"(\d+) acknowledged numbers without verdict", proc.log())
    assert recovered and int(recovered[-1]) <= len(accepted), proc.log()
    code = proc.stop(timeout=10)
    assert code == 0, "%s: exit %s on SIGTERM\n%s" % (label, code, proc.log())
    return "started"


def test_journal_damage():
    rng = random.Random(int(os.environ.get("PZ_DAMAGE_SEED", "0")) or None)
    with Cluster("durable-journal-damage") as c:
        pristine = c.path("journal")
        original, accepted = make_journal(c, pristine)
        assert original, "the journal served nothing"
        segments = sorted(f for f in os.listdir(pristine) if f.endswith(".pzj"))
        outcomes = {"refused": 0, "started": 0}
        for trial in range(200):
            copy = c.path("damaged")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(pristine, copy)
            segment = os.path.join(copy, rng.choice(segments))
            size = os.path.getsize(segment)
            offset = rng.randrange(size)
            if trial < 100:
                with open(segment, "r+b") as handle:
                    handle.truncate(offset)
                label = "cut-%s-at-%d" % (os.path.basename(segment), offset)
            else:
                with open(segment, "r+b") as handle:
                    handle.seek(offset)
                    byte = handle.read(1)[0]
                    handle.seek(offset)
                    handle.write(bytes([byte ^ (1 << rng.randrange(8))]))
                label = "flip-%s-at-%d" % (os.path.basename(segment), offset)
            outcomes[try_damaged(c, copy, original, accepted, label)] += 1
            c.procs = [p for p in c.procs if p.alive()]     # ended, logs kept
        harness.report("journal_damage", harness.Verdict(0, 0, 0, 0, 0, 0),
                       trials=200, **outcomes)
        assert outcomes["started"] > 0 and outcomes["refused"] > 0, outcomes


# ---------------------------------------------------------------------------
# 5. a full disk: refuse (E 9), lose nothing, go on when space is back

def test_disk_full():
    with Cluster("durable-disk-full") as c:
        mount = c.path("tmpfs")
        os.makedirs(mount)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mount],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise harness.Skip("cannot mount a tmpfs here (%s)" % result.stderr.strip())
        try:
            filler = os.path.join(mount, "filler")
            with open(filler, "wb") as handle:
                handle.write(b"\0" * (4 * 1024 * 1024 - 256 * 1024))
            broker, ep = c.start_broker("--journal", os.path.join(mount, "journal"),
                                        "--stats", 1)
            sink, out = start_sink(c, broker, ep, "sink")
            workers = start_workers(c, ep, 1)
            acked = c.path("acked.txt")
            # 40,000 numbers take ~0.8 MB of journal: more than is free.
            source = c.start("source", "--connect", ep["source"], "--acked", acked, *WIDE,
                             "--count", 40000, "--batch", 100, "--rate", 20000,
                             "--timeout", 1000, "--retries", 5)
            broker.wait_for_log(r"cannot write journal", timeout=30)
            time.sleep(2)
            assert source.alive(), "the source gave up while the disk was full:\n" + \
                source.log()
            assert "cannot store numbers now (E 9)" in source.log(), source.log()
            acked_while_full = harness.count_lines(acked)
            os.unlink(filler)
            broker.wait_for_log(r"writable again", timeout=15)
            assert source.wait(60) == 0, source.log()
            expected = harness.count_lines(acked)
            wait_complete([out], expected, 30)
            time.sleep(0.3)
            sink.stop()
            for worker in workers:
                worker.stop()
            assert broker.stop(timeout=10) == 0, broker.log()
            verdict = harness.verify([acked], [out])
            harness.report("disk_full", verdict, acked_while_full=acked_while_full)
            assert expected == 40000, expected
            assert_exact(verdict)
        finally:
            c.stop_all()
            subprocess.run(["umount", "-l", mount], capture_output=True)


# ---------------------------------------------------------------------------
# 6. no journal: a sink that misses messages says so; --strict fails

def test_no_journal_gaps_are_reported():
    with Cluster("durable-no-journal-gaps") as c:
        broker, ep = c.start_broker("--stats", 0, "--publish-hwm", 10,
                                    endpoints=private_endpoints())
        # The sink's stdout is a FIFO nobody reads for a while: it falls far
        # behind its high-water marks and the broker drops its messages.
        fifo = c.path("slow.fifo")
        os.mkfifo(fifo)
        before = len(re.findall(r"sink subscribed", broker.log()))
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        sink = c.start("sink", *sink_endpoints(ep),
                       "--tags", "PC", "--hwm", 10, "--strict", name="sink-strict",
                       stdout=fifo)
        broker.wait_for_log(r"sink subscribed", count=before + 2, timeout=15)
        workers = start_workers(c, ep, 2)
        # 3 million numbers, 54 MB of publications: far more than the
        # kernel's socket buffers hold for a sink that reads nothing.
        source = c.start("source", "--connect", ep["source"], *WIDE,
                         "--count", 3000000, "--batch", 1000, "--pipeline", 8)
        assert source.wait(120) == 0, source.log()
        time.sleep(1)
        # Now read everything: the sink catches up, sees the gaps, fails.
        drained = 0
        deadline = time.monotonic() + 30
        while sink.alive() and time.monotonic() < deadline:
            try:
                chunk = os.read(reader, 1 << 20)
                drained += len(chunk)
            except BlockingIOError:
                time.sleep(0.05)
        os.close(reader)
        if sink.alive():
            sink.stop()
            raise AssertionError("the --strict sink did not stop by itself:\n" + sink.log())
        code = sink.wait(10)
        for worker in workers:
            worker.stop()
        broker.stop()
        log = sink.log()
        harness.report("no_journal_gaps", harness.Verdict(0, 0, 0, 0, 0, 0),
                       sink_exit=code, drained_bytes=drained)
        assert code == 3, "--strict sink exited %s:\n%s" % (code, log)
        assert re.search(r"missed \d+ [PC] messages", log), log
        assert re.search(r"lost [1-9]\d* messages", log), log


# ---------------------------------------------------------------------------
# 7. workers start on numbers while their sync runs

SYNC_DELAY_S = 2.0


def test_work_before_the_sync():
    strace = shutil.which("strace")
    if not strace:
        raise harness.Skip("strace is not installed (tools/packages-test.txt)")
    probe = subprocess.run([strace, "-qq", "-o", "/dev/null", "-e", "trace=none", "true"],
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        raise harness.Skip("strace cannot trace here: %s" % probe.stderr.decode().strip())
    # Every fdatasync of the broker (its syncer's, and the segment's at
    # creation) waits SYNC_DELAY_S first: a disk that is slow to sync.
    prefix = (strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync",
              "-e", "inject=fdatasync:delay_enter=%dms" % int(SYNC_DELAY_S * 1000))
    with Cluster("durable-work-before-sync") as c:
        broker, ep = c.start_broker("--stats", 0, "--journal", c.path("journal"),
                                    "--coalesce-ms", 0, endpoints=private_endpoints(),
                                    prefix=prefix)
        sink, out = start_sink(c, broker, ep, "sink", "--history", "none")
        worker = start_workers(c, ep, 1)[0]
        acked = c.path("acked.txt")
        source = c.start("source", "--connect", ep["source"], *WIDE, "--count", 1000,
                         "--batch", 1000, "--pipeline", 1, "--timeout", 20000,
                         "--acked", acked)
        # Half the sync's delay in: the numbers are written, not synced.
        time.sleep(SYNC_DELAY_S / 2)
        early_acks = harness.count_lines(acked) if os.path.exists(acked) else 0
        worker.stop()
        tested = re.findall(r"worker: tested (\d+) numbers", worker.log())
        assert early_acks == 0, "acknowledged before its sync could end: %d" % early_acks
        assert tested and int(tested[-1]) == 1000, \
            "the worker did not get the numbers while their sync ran:\n" + worker.log()
        # The ack comes with the sync, and the verdicts with the next one.
        assert source.wait(6 * SYNC_DELAY_S) == 0, source.log()
        lines = wait_complete([out], 1000, 6 * SYNC_DELAY_S)
        sink.stop()
        verdict = harness.verify([acked], [out])
        harness.report("work_before_the_sync", verdict, tested=int(tested[-1]),
                       early_acks=early_acks)
        assert lines == 1000
        assert_exact(verdict)


if __name__ == "__main__":
    harness.run_tests(globals())
