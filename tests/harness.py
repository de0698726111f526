"""harness - run the real PlayØMQ executables in tests, and check what they did

Shared by the end-to-end, fault and network tests. It starts processes in
their own process groups, logs each one's stderr to a file in a scratch
directory, and ends every process it started when the test ends (normally,
on an exception, or on SIGTERM from meson's timeout). Brokers bind
tcp://127.0.0.1:* so the kernel picks free ports; the resolved endpoints
are read back from the broker's log.

The checker compares what sources got acknowledged with what a reference
sink saw published, in the style of Jepsen: lost, duplicated, unexpected,
wrong. Verdicts are checked with an independent primality test written
here in Python (Miller-Rabin with the first 12 primes as bases, proven
exact below 3.3e24), not with the C code under test.
"""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("PZ_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "build")


def binary(name):
    """Path of a built executable: broker, worker, source or sink."""
    return os.path.join(BUILD, name, "playzmq-" + name)


# ---------------------------------------------------------------------------
# Independent primality

_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n):
    """Exact for every n below 3.3e24, so for every int64."""
    if n < 2:
        return False
    for p in _BASES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in _BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


# ---------------------------------------------------------------------------
# Processes

# The broker's endpoints, in the order it logs them.
ENDPOINTS = ("source", "publish", "dispatch", "results", "history")


def sink_endpoints(ep):
    """A sink's flags for a broker's endpoints (a dict from start_broker):
    its publish endpoint and its history endpoint."""
    return ("--connect", ep["publish"], "--history", ep["history"])


class Proc:
    """One started executable, its log file, and how to stop it."""

    def __init__(self, cluster, name, args, stdout=None, stdin=None, env=None,
                 prefix=()):
        self.name = name
        self.log_path = os.path.join(cluster.dir, "%s.log" % name)
        self.out_path = stdout
        self.args = list(args)
        log = open(self.log_path, "ab")
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        self.popen = subprocess.Popen(
            list(prefix) + self.args, stdout=out, stderr=log,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            env=env, start_new_session=True)
        log.close()
        if stdout:
            out.close()

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def signal(self, signum):
        if self.alive():
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout):
        """Exit status, or raise subprocess.TimeoutExpired."""
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL if it does not end in time. Exit status."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.popen.wait(timeout=timeout)

    def kill(self):
        self.signal(signal.SIGKILL)
        return self.popen.wait(timeout=10)

    def log(self):
        with open(self.log_path, errors="replace") as handle:
            return handle.read()

    def wait_for_log(self, pattern, timeout=10.0, count=1):
        """Waits until pattern matches count times in the log. Returns the
        matches; raises AssertionError with the log if it times out."""
        deadline = time.monotonic() + timeout
        while True:
            matches = re.findall(pattern, self.log())
            if len(matches) >= count:
                return matches
            if time.monotonic() > deadline:
                raise AssertionError("%s: no %r (x%d) in its log after %.1f s:\n%s"
                                     % (self.name, pattern, count, timeout, self.log()))
            if not self.alive() and len(re.findall(pattern, self.log())) < count:
                raise AssertionError("%s exited with %s before %r:\n%s"
                                     % (self.name, self.popen.returncode, pattern, self.log()))
            time.sleep(0.02)


class Cluster:
    """A scratch directory and every process started in it. Use as a
    context manager: leaving it stops every process still running, then
    removes the directory (journals and sinks' files reach hundreds of MB)
    unless the block failed or $PZ_KEEP_TMP is set: then it stays, and its
    path is printed, for the logs."""

    def __init__(self, name="playzmq"):
        self.dir = tempfile.mkdtemp(prefix=name + "-")
        self.procs = []
        self._count = collections.Counter()

    def __enter__(self):
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.stop_all()
        passed = exc_type is None or issubclass(exc_type, Skip)
        if passed and not os.environ.get("PZ_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept %s" % self.dir, file=sys.stderr)
        return False

    def _on_sigterm(self, signum, frame):
        self.stop_all()
        sys.exit("terminated (test timeout?)")

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, kind, *args, name=None, **kwargs):
        """Starts playzmq-<kind> with args; name defaults to kind-N."""
        self._count[kind] += 1
        name = name or "%s-%d" % (kind, self._count[kind])
        proc = Proc(self, name, [binary(kind)] + [str(a) for a in args], **kwargs)
        self.procs.append(proc)
        return proc

    def start_broker(self, *args, endpoints=None, name=None, **kwargs):
        """Starts a broker on free loopback ports (or on endpoints, a dict
        from a previous broker) and returns (proc, endpoints)."""
        endpoints = endpoints or {k: "tcp://127.0.0.1:*" for k in ENDPOINTS}
        # A restarted broker logs again in the same file: count the earlier
        # starts' lines, and keep the last five.
        log_path = self.path("%s.log" % name) if name else None
        earlier = 0
        if log_path and os.path.exists(log_path):
            with open(log_path, errors="replace") as handle:
                earlier = len(re.findall(r"broker: \w+ endpoint bound to", handle.read()))
        proc = self.start("broker",
                          "--source-bind", endpoints["source"],
                          "--publish-bind", endpoints["publish"],
                          "--dispatch-bind", endpoints["dispatch"],
                          "--results-bind", endpoints["results"],
                          "--history-bind", endpoints["history"],
                          *args, name=name, **kwargs)
        bound = {}
        for which, endpoint in proc.wait_for_log(
                r"broker: (\w+) endpoint bound to (\S+)",
                count=earlier + len(ENDPOINTS))[-len(ENDPOINTS):]:
            bound[which] = endpoint
        return proc, bound

    def stop_all(self):
        for proc in reversed(self.procs):
            if proc.alive():
                proc.stop(timeout=3)


# ---------------------------------------------------------------------------
# Reading outputs

def read_numbers(path):
    """The integers in a file, one per line (a source's --acked file)."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [int(line) for line in handle if line.strip()]


def read_records(path):
    """(tag, value) pairs from a sink's text output."""
    records = []
    if not os.path.exists(path):
        return records
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 2:
                records.append((parts[0], int(parts[1])))
    return records


def read_corrected(path):
    """A sink's text output with its corrections applied: returns (records,
    corrections). Each `X C 4` line (the audit found an earlier verdict of
    4 wrong; 4 is composite) sets the latest earlier record of 4 with the
    other tag right; corrections counts those lines."""
    records, corrections = [], 0
    latest = {}
    if not os.path.exists(path):
        return records, corrections
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 2:
                latest[(parts[0], int(parts[1]))] = len(records)
                records.append((parts[0], int(parts[1])))
            elif len(parts) == 3 and parts[0] == "X":
                corrections += 1
                right, value = parts[1], int(parts[2])
                wrong = "C" if right == "P" else "P"
                index = latest.pop((wrong, value), None)
                if index is not None:
                    records[index] = (right, value)
    return records, corrections


def count_lines(path):
    """Lines in a file so far (0 if it does not exist yet)."""
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def wait_for_lines(path, count, timeout):
    """Waits until a file has at least count lines. Returns the line count."""
    deadline = time.monotonic() + timeout
    lines = count_lines(path)
    while lines < count and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = count_lines(path)
    return lines


# ---------------------------------------------------------------------------
# The checker

Verdict = collections.namedtuple(
    "Verdict", "acked results lost duplicated unexpected wrong")


def check(acked, results):
    """Compares acknowledged numbers (a list, repeats allowed) with published
    results ((tag, value) pairs, tag P or C). Returns a Verdict of counts."""
    want = collections.Counter(acked)
    got = collections.Counter(value for _, value in results)
    lost = sum(max(0, n - got[v]) for v, n in want.items())
    duplicated = sum(max(0, n - want[v]) for v, n in got.items() if v in want)
    unexpected = sum(n for v, n in got.items() if v not in want)
    wrong = sum(1 for tag, value in results
                if tag != ("P" if is_prime(value) else "C"))
    return Verdict(len(acked), len(results), lost, duplicated, unexpected, wrong)


def report(name, verdict, **extra):
    """Prints one scenario's counts on one line."""
    fields = " ".join("%s=%s" % kv for kv in verdict._asdict().items())
    more = " ".join("%s=%s" % kv for kv in extra.items())
    print("%s: %s %s" % (name, fields, more), flush=True)


# ---------------------------------------------------------------------------
# A small runner: every function named test_* in a module, in file order

class Skip(Exception):
    """Raised by a test that cannot run here; the message says why."""


def run_tests(namespace, only=None):
    """Runs the test_* functions of a module (or those named in argv).
    Prints one line per test and 'N passed, N failed, N skipped'. Exits 1
    if any failed, 77 (meson's 'skipped') if all were skipped, else 0."""
    import traceback
    names = [n for n in namespace if n.startswith("test_") and callable(namespace[n])]
    wanted = only or sys.argv[1:]
    if wanted:
        names = [n for n in names if n in wanted]
    passed = failed = skipped = 0
    for name in names:
        started = time.monotonic()
        try:
            namespace[name]()
        except Skip as why:
            skipped += 1
            print("SKIP %s: %s" % (name, why), flush=True)
            continue
        except Exception:
            failed += 1
            print("FAIL %s (%.1f s)" % (name, time.monotonic() - started), flush=True)
            traceback.print_exc()
            sys.stdout.flush()
            continue
        passed += 1
        print("ok   %s (%.1f s)" % (name, time.monotonic() - started), flush=True)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped), flush=True)
    if failed:
        sys.exit(1)
    if skipped and not passed:
        sys.exit(77)
    sys.exit(0)


def rawreq(endpoint, *frames):
    """Sends frames (hex strings) with the rawreq tool; returns the reply
    as a list of (tag, value)."""
    tool = os.path.join(BUILD, "tests", "rawreq")
    out = subprocess.run([tool, endpoint] + list(frames), capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return [(line.split()[0], int(line.split()[1])) for line in out.splitlines()]


def record_hex(tag, value):
    """One record as a hex string: tag byte, then big-endian int64."""
    return (tag.encode() + (value & (2**64 - 1)).to_bytes(8, "big")).hex()


def report_hex(dispatch_id, primes):
    """A report of numbers (protocol 3) as a hex string: I dispatch_id, then
    one verdict bit per number (primes: a list of bools, True = prime),
    64 to a V record, bit i % 64 (least significant first) of record i // 64."""
    out = record_hex("I", dispatch_id)
    for start in range(0, len(primes), 64):
        bits = sum(1 << i for i, p in enumerate(primes[start:start + 64]) if p)
        out += (b"V" + bits.to_bytes(8, "big")).hex()
    return out


def private_endpoints(host="127.0.0.1"):
    """Five endpoints (a dict for Cluster.start_broker) on random free ports
    below the kernel's ephemeral range. Tests on this machine run
    concurrently, and once a broker exits, its sources, workers and sinks
    reconnect to whatever listens on its ports next. A port below the
    ephemeral range is never handed out for a ':*' bind nor used as a
    client's local port, so it stays ours, also while a broker restarts."""
    import random
    import socket
    with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
        low = int(handle.read().split()[0])
    ports = []
    while len(ports) < len(ENDPOINTS):
        port = random.randrange(10000, max(10001, low - 1))
        if port in ports:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        ports.append(port)
    return {which: "tcp://%s:%d" % (host, port) for which, port in
            zip(ENDPOINTS, ports)}


# ---------------------------------------------------------------------------
# The verdict log: checking large runs, reading history

def verify(acked_paths, output_paths):
    """Runs the C checker (tests/verify.c) over sources' --acked files and
    text sinks' outputs: for runs of millions of numbers, where check()
    would take minutes. Returns a Verdict (wrong by reference.c's
    Miller-Rabin, independent of the worker's BPSW)."""
    tool = os.path.join(BUILD, "tests", "verify")
    out = subprocess.run([tool] + list(acked_paths) + ["--"] + list(output_paths),
                         capture_output=True, text=True, timeout=600)
    fields = out.stdout.split()
    if len(fields) < 14 or out.returncode == 2:
        raise AssertionError("verify failed: %s %s" % (out.stdout, out.stderr))
    counts = {fields[i]: int(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}
    assert counts["malformed"] == 0, out.stdout
    return Verdict(counts["acked"], counts["results"], counts["lost"],
                   counts["duplicated"], counts["unexpected"], counts["wrong"])


def history(endpoint, tags="PC", start=1, until=0):
    """Reads the broker's history endpoint from sequence number start (to
    until, 0: to the end) for tags, as a sink would, with the rawreq tool.
    Returns (publications, status): publications a list of (tag, values,
    seq, tag_seq) in order; status the last reply's (next, oldest,
    {tag: last tag-seq})."""
    publications = []
    while True:
        served_before = len(publications)
        frame = record_hex("H", start) + record_hex("H", until) + "".join(
            record_hex(tag, 0) for tag in tags)
        records = rawreq(endpoint, frame)
        assert records and records[0][0] != "E", records
        data, values = [], []
        index = 0
        while records[index][0] != "A":
            tag, value = records[index]
            if tag == "S":
                tag_seq = records[index + 1]
                assert tag_seq[0] == "T", records
                publications.append((data[0], values, value, tag_seq[1]))
                data, values = [], []
                index += 2
                continue
            data.append(tag)
            values.append(value)
            index += 1
        next_seq, oldest = records[index][1], records[index + 1][1]
        assert records[index + 1][0] == "H", records
        last = {tag: records[index + 2 + i][1] for i, tag in enumerate(tags)}
        served = len(publications) - served_before
        if served == 0 or next_seq <= start or (until and next_seq >= until):
            return publications, (next_seq, oldest, last)
        start = next_seq
