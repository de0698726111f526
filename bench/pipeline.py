#!/usr/bin/env python3
"""pipeline.py - PlayØMQ end to end, beside plain ZeroMQ, in one run

Starts the real programs (a broker, N workers, S sources and a `--format
none` sink) on free loopback ports, times a fixed count of numbers, and
runs the same shapes as plain ZeroMQ (build/bench/playzmq-bench-bare: a
bare REQ->REP loop and a bare pipeline with no acks and no bookkeeping) in
the same run, alternating ours and bare so that a busy machine slows both
alike. Also, each beside the run it is compared with: the programs with
their defaults and a text sink (the headline), the broker with and without
a journal (`--journal`), a sink reading the journal back from the history
endpoint, text/csv/json sinks writing to a file at full rate, and the CPU
each role spends per number, and CURVE on and off (`--curve-cert`, keys
made by playzmq-keygen) at batch 1024 and batch 1. It prints the figures
and the ratios the performance issue targets, and writes docs/PERFORMANCE.md
(with the command of every configuration) and the plots docs/perf-*.png
(gnuplot).

    python3 bench/pipeline.py                 # everything, ~8-12 minutes
    python3 bench/pipeline.py --repeat 1 --scale 0.02 --no-profile --no-doc   # smoke, ~1-2 min
    python3 bench/pipeline.py --only curve    # CURVE on/off only, ~1-2 minutes: rewrites
                                              # only that section of docs/PERFORMANCE.md
    python3 bench/pipeline.py --only audit    # the audit off and at its default, likewise

The programs are taken from --build, or $PZ_BUILD_DIR (as tests/harness.py),
or build/.

Every process it starts is in its own process group and is stopped when
the script ends, however it ends (normally, an exception, Ctrl-C, SIGTERM).
Timings stay here and in the docs, never in `meson test`.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INT64_MAX = (1 << 63) - 1
HAND_BEGIN = "<!-- hand-written: begin (kept by bench/pipeline.py) -->"
HAND_END = "<!-- hand-written: end -->"
# The broker's endpoints, in the order it logs them (as tests/harness.py),
# and the ports they have by default: the commands written into the doc use
# those on 127.0.0.1, where the bench binds free ones.
ENDPOINTS = ("source", "publish", "dispatch", "results", "history")
DEFAULT_PORTS = dict(zip(ENDPOINTS, range(5555, 5560)))

# Targets of the performance issue.
T1_RATIO, T1_ABSOLUTE = 0.75, 10e6
T2_RATIO = 0.90
T4_RSS_KIB = 64 * 1024
T_JOURNAL_RATIO = 0.8           # journal on / off at batch 1024
T_HEADLINE = 0.9                # every program with its defaults / bare, text sinks
T_REPLAY = 10e6                 # verdicts/s read back from the journal
T_CURVE_RATIO = 0.7             # CURVE on / off at batch 1024
CURVE_BATCHES = (1024, 1)       # the CURVE pairs: (batch, count) from these
T_AUDIT_RATIO = 0.95            # the default --audit / --audit 0: at most 5 % of throughput
AUDIT_BATCHES = (1024, 1)       # the audit pairs, shaped as the CURVE ones

# What each configuration sends; --scale multiplies every count. Batch 1024
# sends the same count (and seed) to both, so their primes must agree.
COUNT_BATCH_OURS = {1: 40000, 16: 500000, 128: 2500000, 1024: 20000000, 4096: 20000000}
COUNT_BATCH_BARE = {1: 1500000, 16: 12000000, 128: 15000000, 1024: 20000000, 4096: 30000000}
COUNT_REQREP = 40000            # batch 1, one source, one request at a time
ACK_PAIRS = 2                   # (2): bare/ours pairs per repeat (the noisiest figure)
COUNT_SOURCES = 24000           # batch 1, split over 1, 2, 4 sources
COUNT_RSS_EACH = 600000         # 16 sources, --pipeline 4, batch 1024
SOURCE_PIPELINE = 512           # requests each source keeps outstanding: its default
COUNT_B1_JOURNAL = 4000         # batch 1 with a journal: a sync per request
COUNT_DEFAULTS = 20000000       # the headline: defaults, text sink (and its bare twin)
COUNT_SINK_FORMAT = 20000000    # a text, csv, json sink each at full rate
SINK_FORMATS = ("text", "csv", "json")


# ---------------------------------------------------------------------------
# Processes

class Proc:
    """One started executable in its own process group; its output lines."""

    running = []

    def __init__(self, name, args, stdout=None, stdin=None):
        """stdout: a file to write the output to (then only stderr is read),
        or the write end of a pipe (an int; the caller closes its copy).
        stdin: the read end of a pipe (an int), else /dev/null."""
        self.name = name
        self.args = [str(arg) for arg in args]
        self.stdout_path = stdout if isinstance(stdout, str) else None
        self.piped_to = None        # the command line reading its stdout, if a pipe
        self.lines = []
        self.status = None
        self.rusage = None          # once reaped by cpu_seconds()
        self.changed = threading.Condition()
        opened = isinstance(stdout, str)
        out = open(stdout, "wb") if opened else stdout if stdout is not None else subprocess.PIPE
        try:
            self.popen = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=out,
                stderr=subprocess.PIPE, start_new_session=True)
        finally:
            if opened:
                out.close()
        Proc.running.append(self)
        self.readers = [threading.Thread(target=self._read, args=(stream,), daemon=True)
                        for stream in (self.popen.stdout, self.popen.stderr) if stream]
        for reader in self.readers:
            reader.start()

    def _read(self, stream):
        for raw in iter(stream.readline, b""):
            with self.changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.changed.notify_all()
        stream.close()

    @property
    def pid(self):
        return self.popen.pid

    def wait_for(self, pattern, timeout, count=1):
        """The first `count` matches of pattern in the output, or an error."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or (self.exited() and not found):
                    raise RuntimeError("%s: no '%s' within %.0f s; output:\n  %s" % (
                        self.name, pattern, timeout, "\n  ".join(self.lines[-10:])))
                self.changed.wait(min(left, 0.1))

    def logged(self, pattern):
        """Whether a line of its output so far matches pattern."""
        regex = re.compile(pattern)
        with self.changed:
            return any(regex.search(line) for line in self.lines)

    def exited(self):
        """True once the process has ended (its status in self.status).
        Leaves it a zombie (not reaped): cpu_seconds() reaps it."""
        if self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None:
            self.status = info.si_status
        return info is not None

    def cpu_seconds(self):
        """CPU seconds (user + system, every thread) it has used so far, or
        None: while it runs, the sum of its threads' run times in /proc
        (nanoseconds; a 10 ms tick of /proc/PID/stat is more than a run at
        batch 1 gives some roles); once it has exited, its rusage as it is
        reaped here (microseconds, dead threads included)."""
        if self.popen.returncode is None and self.exited():
            try:
                _, status, self.rusage = os.wait4(self.pid, 0)
                self.popen.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                pass
        if self.rusage:
            return self.rusage.ru_utime + self.rusage.ru_stime
        return thread_seconds(self.pid)

    def exit_time(self, timeout):
        """Waits for exit; returns time.monotonic() at exit, or None on timeout."""
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            fd = None
        deadline = time.monotonic() + timeout
        try:
            while not self.exited():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if fd is not None:
                    select.select([fd], [], [], left)
                else:
                    time.sleep(0.001)
            return time.monotonic()
        finally:
            if fd is not None:
                os.close(fd)

    def output(self):
        for reader in self.readers:
            reader.join(timeout=2)
        with self.changed:
            return "\n".join(self.lines)

    def stop(self, grace=3.0):
        """SIGTERM to the group, SIGKILL after grace seconds, reaped;
        idempotent."""
        if not self.exited():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.popen.wait()
        if self in Proc.running:
            Proc.running.remove(self)

    @classmethod
    def stop_all(cls):
        for proc in list(reversed(cls.running)):
            proc.stop(grace=1.0)


def proc_status(pid, field):
    """A kB field of /proc/<pid>/status (VmHWM, VmRSS), or None."""
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def thread_seconds(pid):
    """CPU seconds used so far by the running threads of pid: the sum of
    their run times in /proc/PID/task/*/schedstat (nanoseconds); without
    schedstat, utime + stime of /proc/PID/stat (ticks). None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
    try:
        nanoseconds = 0
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as schedstat:
                nanoseconds += int(schedstat.read().split()[0])
        return nanoseconds / 1e9
    except (OSError, IndexError, ValueError):
        return ticks


def cpu_times():
    """The machine's CPU times from /proc/stat (user, nice, system, idle,
    iowait, irq, softirq, steal), or None."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
        return [int(value) for value in fields[1:9]]
    except (OSError, ValueError, IndexError):
        return None


def cpu_usage(run, procs, cpu0, t0, end):
    """Adds the CPU time each role used over [t0, end]: in seconds (cpu_s),
    and as cores busy (cpu; 1.0 = one core)."""
    seconds = (end or time.monotonic()) - t0
    if seconds <= 0:
        return
    used = {}
    for proc in procs:
        now = proc.cpu_seconds()
        if now is None:
            continue
        role = proc.name.replace("bare-", "")
        used[role] = used.get(role, 0) + now - (cpu0.get(proc.pid) or 0)
    run["cpu_s"] = used
    run["cpu"] = roles = {role: value / seconds for role, value in used.items()}
    run["broker_cpu"] = roles.get("broker")
    run["total_cpu"] = sum(roles.values())


def broker_stats(proc):
    """The broker's last stats object (`--stats-format json`, one per line
    on stdout; docs/STATS.md): the final one once it has exited. {} if none."""
    for line in reversed(proc.output().splitlines()):
        if line.startswith("{"):
            try:
                stats = json.loads(line)
            except ValueError:
                continue
            if stats.get("type") == "stats":
                return stats
    return {}


def count_lines(path):
    """Lines in a file (0 if there is none)."""
    lines = 0
    try:
        with open(path, "rb") as data:
            for chunk in iter(lambda: data.read(1 << 22), b""):
                lines += chunk.count(b"\n")
    except FileNotFoundError:
        pass
    return lines


def warm_cache(directory):
    """Reads every file below directory once, so that it is in the page cache."""
    for base, _, names in os.walk(directory):
        for name in names:
            with open(os.path.join(base, name), "rb") as data:
                while data.read(1 << 22):
                    pass


def filesystem(path):
    """'ext4 on /dev/vda' for the mount that holds path (from /proc/mounts)."""
    path, best = os.path.realpath(path), None
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                device, point, kind = line.split()[:3]
                if (path == point or path.startswith(point.rstrip("/") + "/")) and (
                        best is None or len(point) >= len(best[1])):
                    best = (device, point, kind)
    except OSError:
        pass
    return "%s on %s (mounted at %s)" % (best[2], best[0], best[1]) if best else "unknown"


class Bench:
    def __init__(self, options, tmp):
        self.options = options
        self.build = os.path.abspath(options.build)
        self.tmp = tmp              # scratch: journals, sinks' files
        self.scratched = 0
        self.started = time.monotonic()
        self.log = []               # every run, as a dict, in order

    def exe(self, kind):
        if kind in ("bare", "primality"):
            return os.path.join(self.build, "bench", "playzmq-bench-" + kind)
        if kind == "keygen":
            return os.path.join(self.build, "keygen", "playzmq-keygen")
        return os.path.join(self.build, kind, "playzmq-" + kind)

    def count(self, value):
        return max(1, int(value * self.options.scale))

    def time_left(self):
        return self.options.budget - (time.monotonic() - self.started)

    @contextlib.contextmanager
    def measuring(self, run, procs, scratch=None):
        """Around one run: a program that did not start or answer
        (RuntimeError) makes the run's error; whatever happens, every
        process in procs is stopped and the scratch file removed. The
        share of the machine's time its hypervisor took (steal) is noted:
        what makes runs on a shared machine differ."""
        before = cpu_times()
        try:
            yield
        except RuntimeError as error:
            run["error"] = str(error).splitlines()[0]
        finally:
            after = cpu_times()
            if before and after and sum(after) > sum(before):
                run["steal"] = (after[7] - before[7]) / (sum(after) - sum(before))
            for proc in procs:
                proc.stop()
            if scratch and os.path.exists(scratch):
                os.remove(scratch)

    def scratch(self, name):
        """A new path in the scratch directory, named N-name."""
        self.scratched += 1
        return os.path.join(self.tmp, "%d-%s" % (self.scratched, name))

    def commands(self, procs, endpoints, timed, bare=False):
        """The shell lines that start procs again, those of timed (the last
        ones, whose end the run waits for) in the foreground: ours bound to
        the default ports on 127.0.0.1 (the bench binds free ones), bare
        with $source, ... for the endpoints its broker prints; paths as from
        the top of the checkout, scratch files by name; processes started
        alike (but for the seed) in one loop."""
        names = {endpoint: "$" + which if bare else "tcp://127.0.0.1:%d" % DEFAULT_PORTS[which]
                 for which, endpoint in endpoints.items()}
        groups = []                 # [line with $seed, times, in timed, line]
        for proc in procs:
            words = []
            for before, arg in zip([None] + proc.args, proc.args):
                if before and before.endswith("-bind") and arg.endswith(":*"):
                    arg = "tcp://127.0.0.1:%d" % DEFAULT_PORTS[before[2:-len("-bind")]]
                elif arg.startswith(self.build + os.sep):
                    arg = "build/" + os.path.relpath(arg, self.build)
                elif arg.startswith(self.tmp + os.sep):
                    arg = re.sub(r"^\d+-", "", os.path.basename(arg))
                words.append(names.get(arg, arg))
            if proc.stdout_path:
                words += [">", re.sub(r"^\d+-", "", os.path.basename(proc.stdout_path))]
            if proc.piped_to:
                words += ["|", proc.piped_to]
            line = " ".join(words)
            looped = re.sub(r"--seed \d+", "--seed $seed", line)
            if groups and groups[-1][0] == looped and groups[-1][2] == (proc in timed):
                groups[-1][1] += 1
            else:
                groups.append([looped, 1, proc in timed, line])
        lines = []
        for looped, times, foreground, line in groups:
            if times == 1:
                lines.append(line + ("" if foreground else " &"))
            else:
                loop = "for %s in $(seq %d); do %s & done" % (
                    "seed" if "$seed" in looped else "i", times, looped)
                lines.append("(%s; wait)" % loop if foreground else loop)
        if bare:
            lines.insert(1, "#   (it prints its endpoints: set $%s from them)"
                         % ", $".join(endpoints))
        return "\n".join(lines)

    # --- ours -------------------------------------------------------------

    def start_broker(self, extra=(), stats_every=0):
        """A broker on free loopback ports, its stats as JSON lines on stdout
        every stats_every seconds (0: only at exit; None: its default).
        Returns (proc, endpoints)."""
        args = [self.exe("broker")]
        for which in ENDPOINTS:
            args += ["--%s-bind" % which, "tcp://127.0.0.1:*"]
        args += ["--stats-format", "json"]
        if stats_every is not None:
            args += ["--stats", stats_every]
        broker = Proc("broker", args + list(extra))
        endpoints = {}
        for match in broker.wait_for(r"broker: (\w+) endpoint bound to (\S+)", 10,
                                     len(ENDPOINTS)):
            endpoints[match.group(1)] = match.group(2)
        return broker, endpoints

    def ours(self, batch, workers, sources, count_each, pipeline=1, sink=True,
             label=None, profile=None, broker_args=(), threads=1, publish_hwm=0,
             journal=None, sink_format="none", defaults=False, kind="ours", curve=None,
             audit=None, tags="PC", sink_count=None, pipe=False):
        """One run of the real programs. Returns a dict of figures.

        curve: the flags of each program for CURVE, a dict from Bench.keys()
        (None: plaintext). audit: the broker's --audit (None: its default).
        pipe: the sink's output (sink_format other than none) goes into a
        pipe that `wc -lc` reads, not to a file, and the run ends at wc's
        exit. tags: the measuring sink's --tags; with other tags than PC,
        sink_count is how many of the run's verdicts it prints (the run
        ends when it has).
        journal: a directory for the broker's --journal. sink_format: the
        measuring sink's --format; unless none, the sink writes to a file
        whose lines are counted. defaults: no tuning flag on any program (as the
        README runs them: endpoints, counts, range, seed, the stats format
        and the sink's format only); pipeline, threads and publish_hwm are
        then not passed."""
        # publish_hwm 0: no limit on the broker's queue to the measuring sink,
        # as in the bare pipeline; a sink starved of CPU for a moment on two
        # busy cores would otherwise lose verdicts at the default 1000
        # messages (PUB drops rather than waits) and the run would not count.
        if publish_hwm is not None and not defaults:
            broker_args = tuple(broker_args) + ("--publish-hwm", publish_hwm)
        if journal:
            broker_args = tuple(broker_args) + ("--journal", journal)
        if audit is not None:
            broker_args = tuple(broker_args) + ("--audit", audit)
        keys = curve or {"broker": [], "source": [], "worker": [], "sink": []}
        broker_args = tuple(broker_args) + tuple(keys["broker"])
        total = count_each * sources
        run = {"kind": kind, "label": label, "batch": batch, "workers": workers,
               "sources": sources, "pipeline": None if defaults else pipeline,
               "count": total}
        procs = []
        out = (self.scratch("verdicts." + {"text": "txt"}.get(sink_format, sink_format))
               if sink and sink_format != "none" and not pipe else None)
        counter = None
        with self.measuring(run, procs, out):
            broker, ep = self.start_broker(broker_args, None if defaults else 0)
            procs.append(broker)
            if sink:
                sink_args = [self.exe("sink"), "--connect", ep["publish"],
                             "--history", ep["history"], "--tags", tags,
                             "--count", sink_count or total]
                if not defaults:
                    # As the bare sink: a measuring sink starved of CPU
                    # queues, never drops.
                    sink_args += ["--format", sink_format, "--hwm", 0]
                sink_args += keys["sink"]
                if pipe and sink_format != "none":
                    sink_proc, counter = self.piped_sink(sink_args)
                    procs.append(counter)
                else:
                    sink_proc = Proc("sink", sink_args, stdout=out)
                procs.append(sink_proc)
                broker.wait_for(r"sink subscribed to '[PC]'", 10, len(tags))
            for index in range(workers):
                procs.append(Proc("worker", [self.exe("worker"), "--dispatch", ep["dispatch"],
                                             "--results", ep["results"]]
                                  + ([] if defaults else ["--threads", threads])
                                  + keys["worker"]))
            time.sleep(0.4 if workers else 0.05)    # let workers connect
            perf = profile(broker.pid) if profile else None
            cpu0 = {proc.pid: proc.cpu_seconds() for proc in procs}
            t0 = time.monotonic()
            source_procs = [Proc("source", [
                self.exe("source"), "--connect", ep["source"], "--count", count_each,
                "--batch", batch, "--min", 0, "--max", INT64_MAX, "--seed", index + 1]
                + ([] if defaults else ["--pipeline", pipeline]) + keys["source"])
                for index in range(sources)]
            procs += source_procs
            run["commands"] = self.commands([p for p in procs if p is not counter], ep,
                                            source_procs)
            end = self.wait_end(sink_proc if sink else None, source_procs)
            if counter and end is not None:
                end = counter.exit_time(10)
            if end is not None:
                # A source reads its last acks a moment after the broker
                # sent them, and the sink may see the verdicts first: let
                # each end by itself, as it does once every request is
                # acknowledged, before stopping what is left.
                for source in source_procs:
                    source.exit_time(5)
            self.finish(run, procs, broker, cpu0, t0, end, total, perf)
            acked, p50s, p99s, src_rates = 0, [], [], []
            for source in source_procs:
                m = re.search(r"sent (\d+), acked (\d+) in ([\d.]+) s \((\d+) numbers/s\); "
                              r"ack p50 ([\d.]+) ms p99 ([\d.]+) ms", source.output())
                if m:
                    acked += int(m.group(2))
                    src_rates.append(int(m.group(4)))
                    p50s.append(float(m.group(5)))
                    p99s.append(float(m.group(6)))
            run["acked"] = acked
            run["source_rate"] = sum(src_rates) if src_rates else None
            run["ack_p50_ms"] = statistics.median(p50s) if p50s else None
            run["ack_p99_ms"] = max(p99s) if p99s else None
            problems = [run.pop("error")] if run.get("error") else []
            if acked != total:
                rejected = sum(1 for s in source_procs if "rejected a request" in s.output())
                problems.append("sources acked %d of %d%s" % (
                    acked, total, ": the broker rejected requests (%s)" % re.search(
                        r"E \d+ \([^)]*\)", source_procs[0].output()).group(0)
                    if rejected and re.search(r"E \d+ \([^)]*\)", source_procs[0].output())
                    else ""))
            if sink:
                m = re.search(r"printed N (\d+), P (\d+), C (\d+);.* lost (\d+) messages",
                              sink_proc.output())
                run["verdicts"] = int(m.group(2)) + int(m.group(3)) if m else 0
                run["primes"] = int(m.group(2)) if m else None
                if run["verdicts"] != (sink_count or total):
                    problems.append("sink got %d of %d verdicts%s" % (
                        run["verdicts"], sink_count or total, ", lost %s messages" % m.group(4)
                        if m and int(m.group(4)) else ""))
            if out:
                self.count_output(run, out, total, problems, header=sink_format == "csv")
            if counter:
                run["piped"] = True
                self.count_piped(run, counter, total, problems, header=sink_format == "csv")
            stats = broker_stats(broker)
            if stats.get("dispatches"):
                run["per_dispatch"] = stats["accepted"] / stats["dispatches"]
            run["commits"] = stats.get("commits") if journal else None
            if problems and stats:
                problems.append("broker accepted %s, published %s verdicts"
                                % (stats.get("accepted"), stats.get("results")))
            if problems:
                run["error"] = "; ".join(problems)
        return self.record(run)

    def count_output(self, run, path, total, problems, header=False):
        """The lines a sink wrote to path (less a csv header), and the bytes
        per line; a problem unless there are total. Removes the file."""
        size = os.path.getsize(path) if os.path.exists(path) else 0
        run["lines"] = count_lines(path) - (1 if header and size else 0)
        run["bytes_per_line"] = size / run["lines"] if run["lines"] > 0 else None
        os.remove(path)
        if run["lines"] != total:
            problems.append("the sink wrote %d of %d lines" % (run["lines"], total))

    def piped_sink(self, args):
        """A sink started with args, its stdout a pipe that `wc -lc` reads.
        Returns (sink, wc); count_piped reads wc's figures once it exited."""
        read_end, write_end = os.pipe()
        try:
            counter = Proc("wc", ["wc", "-lc"], stdin=read_end)
            sink = Proc("sink", args, stdout=write_end)
        finally:
            os.close(read_end)
            os.close(write_end)
        sink.piped_to = "wc -lc"
        return sink, counter

    def count_piped(self, run, counter, total, problems, header=False):
        """The lines wc counted (less a csv header) and the bytes per line;
        a problem unless there are total."""
        m = re.search(r"^\s*(\d+)\s+(\d+)", counter.output())
        lines = int(m.group(1)) if m else 0
        run["lines"] = lines - (1 if header and lines else 0)
        run["bytes_per_line"] = int(m.group(2)) / run["lines"] if run["lines"] > 0 else None
        if run["lines"] != total:
            problems.append("wc counted %d of %d lines" % (run["lines"], total))

    def replay(self, journal, count, label=None, sink_format="none"):
        """A sink reading `count` verdicts back from a journal a run left: a
        broker started on it and nothing else (the live path idle), the
        journal read once first (a warm page cache), then `playzmq-sink
        --from all --format none --tags PC --count N`; the rate is count
        over the time from starting the sink to its exit. sink_format other
        than none: the sink prints every verdict into a pipe that `wc -lc`
        reads (what one sink formats and writes with a core to itself, the
        lines counted at the other end; the rate is then up to wc's exit).
        Not into a file: on this virtual machine a new file's first touch of
        fresh page-cache pages alone costs ~1.5 ns a byte, more than the
        formatting."""
        run = {"kind": "replay" if sink_format == "none" else "replay-" + sink_format,
               "label": label, "count": count}
        procs = []
        counter = None
        with self.measuring(run, procs):
            broker, ep = self.start_broker(("--journal", journal))
            procs.append(broker)
            warm_cache(journal)
            cpu0 = {broker.pid: broker.cpu_seconds()}
            t0 = time.monotonic()
            args = [self.exe("sink"), "--connect", ep["publish"], "--history", ep["history"],
                    "--from", "all", "--format", sink_format, "--tags", "PC", "--count", count]
            if sink_format == "none":
                sink = Proc("sink", args)
            else:
                sink, counter = self.piped_sink(args)
                procs.append(counter)
            procs.append(sink)
            run["commands"] = self.commands([broker, sink], ep, [sink])
            timeout = min(self.options.run_timeout, max(5, self.time_left()))
            end = sink.exit_time(timeout)
            if counter and end is not None:
                end = counter.exit_time(timeout)
            self.finish(run, procs, broker, cpu0, t0, end, count)
            m = re.search(r"printed N (\d+), P (\d+), C (\d+);.* filled (\d+) messages "
                          r"from history, lost (\d+)", sink.output())
            run["verdicts"] = int(m.group(2)) + int(m.group(3)) if m else 0
            run["filled"] = int(m.group(4)) if m else None
            stats = broker_stats(broker)
            problems = [run.pop("error")] if run.get("error") else []
            if run["verdicts"] != count:
                problems.append("sink got %d of %d verdicts" % (run["verdicts"], count))
            if counter:
                run["piped"] = True
                self.count_piped(run, counter, count, problems, header=sink_format == "csv")
            if stats.get("accepted") or stats.get("results") or stats.get("recovered"):
                problems.append("the live path was not idle: broker accepted %s, published "
                                "%s, recovered %s" % (stats.get("accepted"),
                                                      stats.get("results"),
                                                      stats.get("recovered")))
            if problems:
                run["error"] = "; ".join(problems)
        return self.record(run)

    def finish(self, run, procs, broker, cpu0, t0, end, count, perf=None):
        """The measuring tail both pipelines share: each role's CPU and the
        broker's peak memory at `end` (None: timed out), the rate, then
        every process stopped."""
        cpu_usage(run, procs, cpu0, t0, end)
        run["broker_hwm_kib"] = proc_status(broker.pid, "VmHWM")
        if perf:
            perf.stop(grace=30)
        if end is None:
            run["error"] = "timed out"
            end = time.monotonic()
        run["seconds"] = end - t0
        run["rate"] = count / run["seconds"]
        for proc in procs:
            proc.stop()

    def wait_end(self, sink, sources):
        """Time of the sink's exit (or of the last source's without a sink);
        None if it did not come: run timeout, or 10 s after every source
        ended (the sink will never see its count then)."""
        deadline = time.monotonic() + min(self.options.run_timeout,
                                          max(5, self.time_left()))
        sources_done = None
        while time.monotonic() < deadline:
            if sink is None:
                ends = [source.exit_time(0.05) for source in sources]
                if all(ends):
                    return max(ends)
                continue
            end = sink.exit_time(0.05)
            if end is not None:
                return end
            if sources_done is None and all(s.exited() for s in sources):
                sources_done = time.monotonic()
            if sources_done is None:
                continue
            #  Verdicts may trail the last ack by a moment, never by seconds;
            #  a source that failed (rejected requests), or a sink that lost
            #  messages (it never reaches its count), ends the wait sooner.
            failed = any(s.status for s in sources) or sink.logged(r"\b[1-9]\d* lost")
            if time.monotonic() - sources_done > (2 if failed else 10):
                return None
        return None

    def keys(self):
        """Certificates for a CURVE run, made once with playzmq-keygen in the
        scratch directory: the flags of each program (a dict by role)."""
        directory = os.path.join(self.tmp, "keys")
        allow = os.path.join(directory, "allow")
        if not os.path.isdir(allow):
            os.makedirs(allow)
            for name, role in (("broker", None), ("source", "source"),
                               ("worker", "worker"), ("sink", "sink")):
                subprocess.run([self.exe("keygen"), name, "--dir", directory]
                               + (["--role", role] if role else []),
                               check=True, capture_output=True, timeout=30)
                if role:
                    shutil.copy(os.path.join(directory, name + ".cert"), allow)
        server = os.path.join(directory, "broker.cert")
        flags = {"broker": ["--curve-cert", os.path.join(directory, "broker.cert_secret"),
                            "--curve-allow", allow]}
        for role in ("source", "worker", "sink"):
            flags[role] = ["--curve-cert", os.path.join(directory, role + ".cert_secret"),
                           "--curve-server", server]
        return flags

    def curve_pairs(self, add):
        """CURVE off then on, side by side, at each of CURVE_BATCHES: batch
        1024 as table (1) runs it, batch 1 as table (2) (one source, one
        request at a time)."""
        for batch in CURVE_BATCHES:
            if batch == 1:
                count, pipeline = self.count(COUNT_REQREP), 1
            else:
                count, pipeline = self.count(COUNT_BATCH_OURS[batch]), SOURCE_PIPELINE
            off = add("curve-off-k%d" % batch, self.ours(batch, 2, 1, count, pipeline,
                                                         kind="curve-off"))
            add("curve-on-k%d" % batch, self.ours(batch, 2, 1, count, pipeline,
                                                  kind="curve-on", curve=self.keys()))
            if batch != 1024 or not off.get("primes"):
                continue
            # The same numbers (same seed) with the demo's sink, primes only:
            # CURVE's cost is per byte, and the P and C publications carry
            # a third of the bytes each number costs the broker in crypto.
            add("curve-off-p-k%d" % batch, self.ours(
                batch, 2, 1, count, pipeline, kind="curve-off-p", tags="P",
                sink_count=off["primes"]))
            add("curve-on-p-k%d" % batch, self.ours(
                batch, 2, 1, count, pipeline, kind="curve-on-p", curve=self.keys(), tags="P",
                sink_count=off["primes"]))

    def journal_pairs(self, add):
        """The journal rows as the full run makes them: batch 1 (ACK_PAIRS
        runs without, then one with a journal), batch 1024 with a journal
        then without, then the replay of what the batch-1024 run left."""
        for pair in range(ACK_PAIRS):
            add("ours-b1", self.ours(1, 2, 1, self.count(COUNT_REQREP), 1))
        journal = self.scratch("journal")
        add("ours-b1-j", self.ours(1, 2, 1, self.count(COUNT_B1_JOURNAL), 1,
                                   journal=journal, kind="ours-journal"))
        shutil.rmtree(journal, ignore_errors=True)
        journal = self.scratch("journal")
        ran = add("ours-j1024", self.ours(
            1024, 2, 1, self.count(COUNT_BATCH_OURS[1024]), SOURCE_PIPELINE,
            journal=journal, kind="ours-journal"))
        add("ours-k1024", self.ours(
            1024, 2, 1, self.count(COUNT_BATCH_OURS[1024]), SOURCE_PIPELINE))
        if not ran.get("error"):
            add("replay", self.replay(journal, ran["verdicts"]))
        shutil.rmtree(journal, ignore_errors=True)

    def audit_pairs(self, add):
        """The audit off (--audit 0) then at its default, side by side, at
        each of AUDIT_BATCHES, shaped as curve_pairs runs them."""
        for batch in AUDIT_BATCHES:
            if batch == 1:
                count, pipeline = self.count(COUNT_REQREP), 1
            else:
                count, pipeline = self.count(COUNT_BATCH_OURS[batch]), SOURCE_PIPELINE
            add("audit-off-k%d" % batch, self.ours(batch, 2, 1, count, pipeline,
                                                   kind="audit-off", audit=0))
            add("audit-on-k%d" % batch, self.ours(batch, 2, 1, count, pipeline,
                                                  kind="audit-on"))

    # --- bare -------------------------------------------------------------

    def bare_pipeline(self, batch, workers, count, test=True, label=None, text=False):
        """The bare pipeline; text: its sink also prints every verdict to a
        file (`P 97` lines), the shape of a PlayØMQ text sink."""
        run = {"kind": "bare-text" if text else "bare" if test else "bare-no-test",
               "label": label, "batch": batch, "workers": workers, "sources": 1,
               "count": count}
        bare = self.exe("bare")
        procs = []
        out = self.scratch("verdicts.txt") if text else None
        with self.measuring(run, procs, out):
            broker = Proc("bare-broker", [bare, "broker"])
            procs.append(broker)
            ep = {m.group(1): m.group(2) for m in
                  broker.wait_for(r"^(source|publish|dispatch|results) (\S+)", 10, 4)}
            sink = Proc("bare-sink", [bare, "sink", "--connect", ep["publish"],
                                      "--count", count] + (["--text"] if text else []),
                        stdout=out)
            procs.append(sink)
            broker.wait_for(r"subscribed to '[PC]'", 10, 2)
            for index in range(workers):
                procs.append(Proc("bare-worker", [bare, "worker", "--dispatch", ep["dispatch"],
                                                  "--results", ep["results"]]
                                  + ([] if test else ["--no-test"])))
            time.sleep(0.4)
            cpu0 = {proc.pid: proc.cpu_seconds() for proc in procs}
            t0 = time.monotonic()
            source = Proc("bare-source", [bare, "source", "--connect", ep["source"],
                                          "--count", count, "--batch", batch, "--seed", 1])
            procs.append(source)
            run["commands"] = self.commands(procs, ep, [source], bare=True)
            end = self.wait_end(sink, [source])
            self.finish(run, procs, broker, cpu0, t0, end, count)
            m = re.search(r"(\d+) verdicts \(P (\d+)", sink.output())
            run["verdicts"] = int(m.group(1)) if m else 0
            run["primes"] = int(m.group(2)) if m else None
            problems = [run.pop("error")] if run.get("error") else []
            if run["verdicts"] < count:
                problems.append("sink got %d of %d verdicts" % (run["verdicts"], count))
            if out:
                self.count_output(run, out, count, problems)
            if problems:
                run["error"] = "; ".join(problems)
        return self.record(run)

    def bare_reqrep(self, count, label=None):
        run = {"kind": "bare-reqrep", "label": label, "batch": 1, "count": count}
        bare = self.exe("bare")
        procs = []
        with self.measuring(run, procs):
            rep = Proc("bare-rep", [bare, "rep"])
            procs.append(rep)
            endpoint = rep.wait_for(r"^rep (\S+)", 10)[0].group(1)
            req = Proc("bare-req", [bare, "req", "--connect", endpoint, "--count", count])
            procs.append(req)
            run["commands"] = self.commands(procs, {"rep": endpoint}, [req], bare=True)
            if req.exit_time(self.options.run_timeout) is None:
                run["error"] = "timed out"
            m = re.search(r"(\d+) round trips in ([\d.]+) s \((\d+) per s\); "
                          r"p50 ([\d.]+) ms p99 ([\d.]+) ms", req.output())
            if m:
                run.update(seconds=float(m.group(2)), rate=float(m.group(3)),
                           source_rate=float(m.group(3)),
                           ack_p50_ms=float(m.group(4)), ack_p99_ms=float(m.group(5)))
            elif "error" not in run:
                run["error"] = "no result line"
        return self.record(run)

    def record(self, run):
        self.log.append(run)
        print("  " + describe(run), flush=True)
        return run


def describe(run):
    parts = ["%-13s" % run["kind"]]
    if "batch" in run:
        parts.append("batch %4d" % run["batch"])
    if "workers" in run:
        parts.append("workers %d" % run["workers"])
    if run.get("sources"):
        parts.append("sources %2d" % run["sources"])
    if run.get("pipeline"):
        parts.append("pipeline %d" % run["pipeline"])
    if run.get("rate") and not run.get("error"):
        replay = run["kind"].startswith("replay")
        parts.append("%10s %s/s %s" % (si(run["rate"]), "verdicts" if replay else "numbers",
                                       "from history" if replay else "end to end"))
    if run.get("lines") and not run.get("error"):
        parts.append("%s lines %s (%.1f bytes each)" % (
            si(run["lines"]), "into a pipe" if run.get("piped") else "to a file",
            run["bytes_per_line"] or 0))
    if run.get("commits"):
        parts.append("%d journal commits" % run["commits"])
    if run.get("filled") is not None:
        parts.append("%d messages filled from history" % run["filled"])
    if run.get("source_rate") and run["kind"] != "bare-reqrep" and not run.get("error"):
        parts.append("source acked %s/s" % si(run["source_rate"]))
    if run.get("ack_p50_ms") is not None:
        parts.append("ack p50 %.3f p99 %.3f ms" % (run["ack_p50_ms"], run["ack_p99_ms"]))
    if run.get("per_dispatch"):
        parts.append("%.0f numbers per dispatch" % run["per_dispatch"])
    if run.get("broker_hwm_kib"):
        parts.append("broker VmHWM %.1f MiB" % (run["broker_hwm_kib"] / 1024))
    if run.get("cpu"):
        parts.append("CPU " + " ".join("%s %.0f%%" % (role, 100 * value) for role, value
                                       in sorted(run["cpu"].items())))
    if run.get("cpu_s") and run.get("count") and not run.get("error"):
        parts.append("ns/number " + " ".join(
            "%s %.0f" % (role, 1e9 * value / run["count"])
            for role, value in sorted(run["cpu_s"].items()) if role in ("broker", "worker")))
    if run.get("steal") is not None:
        parts.append("steal %.0f%%" % (100 * run["steal"]))
    if run.get("error"):
        parts.append("ERROR: " + run["error"])
    return ", ".join(parts)


def si(value):
    if value is None:
        return "-"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return "%.2f%s" % (value / limit, suffix)
    return "%.0f" % value


# ---------------------------------------------------------------------------
# Statistics over repeats: median, and the spread as min-max

def good(runs, key):
    return [run[key] for run in runs if run.get(key) is not None and not run.get("error")]


def med(values):
    return statistics.median(values) if values else None


def spread(values, fmt=si):
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0])
    return "%s [%s-%s]" % (fmt(statistics.median(values)), fmt(min(values)), fmt(max(values)))


def ratio_fmt(value):
    return "%.2f" % value


def ratios(ours_runs, base_runs, key_ours="rate", key_base="rate"):
    """Ratios of paired runs (the i-th of each, measured side by side)."""
    out = []
    for ours, base in zip(ours_runs, base_runs):
        if ours.get("error") or base.get("error") or not base.get(key_base):
            continue
        if ours.get(key_ours) is None:
            continue
        out.append(ours[key_ours] / base[key_base])
    return out


def cpu_fmt(runs):
    """Median CPU per role over good runs, in % of one core, and the total."""
    runs = [run for run in runs if run.get("cpu") and not run.get("error")]
    if not runs:
        return "-"
    roles = sorted({role for run in runs for role in run["cpu"]})
    parts = ["%s %.0f" % (role, 100 * med([run["cpu"].get(role, 0) for run in runs]))
             for role in roles]
    return " · ".join(parts) + " (total %.0f)" % (100 * med([run["total_cpu"] for run in runs]))


def verdict(value, target):
    if value is None:
        return "MISS (no measurement)"
    return "PASS" if value >= target else "MISS"


# ---------------------------------------------------------------------------
# Machine, primality, profile

def machine_info(bench):
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = subprocess.run([bench.exe("bare"), "version"], capture_output=True,
                              text=True).stdout.strip()
    load = os.getloadavg()
    return {
        "cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
        "versions": versions,
        "os": (read_os_release() or platform.platform()),
        "load": "%.2f %.2f %.2f" % load,
        "python": platform.python_version(),
        "scratch": "`%s`: %s" % (bench.tmp, filesystem(bench.tmp)),
    }


def read_os_release():
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        return None


def run_primality(bench):
    exe = bench.exe("primality")
    if not os.path.exists(exe):
        return None
    try:
        done = subprocess.run([exe], capture_output=True, text=True, timeout=300)
        return (done.stdout + done.stderr).strip()
    except subprocess.TimeoutExpired:
        return "(timed out after 300 s)"


class PerfRecorder:
    """perf record (software cpu-clock event: works in VMs without hardware
    counters) attached to one pid, with call graphs."""

    def __init__(self, data):
        self.data = data
        self.proc = None

    def __call__(self, pid):
        self.proc = Proc("perf", ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g",
                                  "-o", self.data, "-p", pid])
        time.sleep(0.3)
        return self

    def stop(self, grace=30):
        if self.proc and self.proc.popen.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.proc.stop()


def profile_broker(bench, tmp):
    """perf (cpu-clock) and callgrind profiles of our broker at full load,
    batch 1024. Returns markdown, or None when neither tool is there."""
    sections = []
    count = bench.count(COUNT_BATCH_OURS[1024])
    if shutil.which("perf"):
        data = os.path.join(tmp, "perf.data")
        print("profile: perf record -e cpu-clock -g on the broker, batch 1024, "
              "2 workers, %d numbers" % count, flush=True)
        run = bench.ours(1024, 2, 1, count, SOURCE_PIPELINE, label="profile-perf",
                         profile=PerfRecorder(data))
        if os.path.exists(data):
            report = subprocess.run(
                ["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol",
                 "--stdio", "--percent-limit", "0.7", "-g", "none"],
                capture_output=True, text=True, timeout=300).stdout
            lines = [re.sub(r"(\s+-)+\s*$", "", line) for line in report.splitlines()
                     if line.strip() and not line.startswith("#")][:40]
            by_dso = subprocess.run(
                ["perf", "report", "-i", data, "--no-children", "--sort", "dso",
                 "--stdio", "-g", "none"],
                capture_output=True, text=True, timeout=300).stdout
            dso_lines = [line.rstrip() for line in by_dso.splitlines()
                         if line.strip() and not line.startswith("#")][:12]
            sections.append(
                "### perf: where the broker's CPU time goes (self time, sampled)\n\n"
                "`perf record -e cpu-clock -F 2000 -g -p <broker>` during the run `%s`.\n"
                "The machine has no hardware counters (`perf stat -e instructions` says "
                "`<not supported>`), so the sampling event is the software `cpu-clock`; "
                "kernel time is included.\n\nBy library:\n\n```\n%s\n```\n\n"
                "By function (at least 0.7%% of samples):\n\n```\n%s\n```\n"
                % (describe(run), "\n".join(dso_lines), "\n".join(lines)))
    if shutil.which("valgrind") and shutil.which("callgrind_annotate"):
        cg_count = bench.count(2000000)
        out = os.path.join(tmp, "callgrind.out")
        print("profile: valgrind --tool=callgrind on the broker, batch 1024, "
              "2 workers, %d numbers" % cg_count, flush=True)
        real = bench.exe("broker")
        wrapper = os.path.join(tmp, "broker-callgrind")
        with open(wrapper, "w") as script:
            script.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s "
                         "%s \"$@\"\n" % (out, real))
        os.chmod(wrapper, 0o755)
        saved = bench.exe
        bench.exe = lambda kind: wrapper if kind == "broker" else saved(kind)
        try:
            run = bench.ours(1024, 2, 1, cg_count, SOURCE_PIPELINE, label="profile-callgrind")
        finally:
            bench.exe = saved
        if os.path.exists(out):
            annotate = subprocess.run(["callgrind_annotate", out], capture_output=True,
                                      text=True, timeout=300).stdout
            inclusive = subprocess.run(["callgrind_annotate", "--inclusive=yes", out],
                                       capture_output=True, text=True, timeout=300).stdout
            sections.append(
                "### callgrind: instructions the broker executes (user space only)\n\n"
                "`valgrind --tool=callgrind` on the broker during the run `%s` "
                "(slowed down by valgrind; the kernel's part is not counted).\n\n"
                "Self:\n\n```\n%s\n```\n\nInclusive:\n\n```\n%s\n```\n"
                % (describe(run), callgrind_top(annotate, 22), callgrind_top(inclusive, 22)))
    return "\n".join(sections) if sections else None


def callgrind_top(text, lines):
    """The total and the first `lines` functions of callgrind_annotate."""
    total = next((line.strip() for line in text.splitlines() if "PROGRAM TOTALS" in line), "")
    out, started = [], False
    for line in text.splitlines():
        if "file:function" in line:
            started = True
            out.append(line.rstrip())
            continue
        if started and line.strip() and not line.startswith("-") and "PROGRAM TOTALS" not in line:
            out.append(re.sub(r" \[[^\]]*\]$", "", line.rstrip()))
            if len(out) > lines:
                break
    return (total + "\n\n" if total else "") + "\n".join(out)


# ---------------------------------------------------------------------------
# Plot

def plot(bench, batch_rows, worker_rows, docs):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("plot: gnuplot not found (Debian: apt-get install gnuplot-nox; see "
              "tools/packages-bench.txt): skipping the plots", flush=True)
        return []
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows, xlabel, logx in (
                ("perf-batch.png", batch_rows, "numbers per message (--batch)", True),
                ("perf-workers.png", worker_rows, "worker processes (1 thread each)", False)):
            data = os.path.join(tmp, name + ".dat")
            with open(data, "w") as out:
                for x, ours, bare in rows:
                    out.write("%d %s %s\n" % (
                        x, *(("%g %g %g" % (med(v) / 1e6, min(v) / 1e6, max(v) / 1e6))
                             if v else "NaN NaN NaN" for v in (ours, bare))))
            script = "\n".join([
                "set terminal pngcairo size 800,500 font 'sans,10'",
                "set output '%s'" % os.path.join(docs, name),
                "set title 'PlayØMQ vs bare ZeroMQ, tcp loopback, %d cores "
                "(median of %d, bars: min-max)'" % (os.cpu_count(), bench.options.repeat),
                "set xlabel '%s'" % xlabel,
                "set ylabel 'million numbers/s, end to end'",
                "set key top left", "set grid",
                "set logscale x 2" if logx else "set xtics 1",
                "set logscale y 10" if logx else "set yrange [0:*]",
                "set xrange [0.7:6000]" if logx else "set xrange [0.5:4.5]",
                "plot '%s' using 1:5:6:7 with yerrorlines lw 2 title 'bare ZeroMQ pipeline', "
                "'%s' using 1:2:3:4 with yerrorlines lw 2 title 'PlayØMQ (acks, ids, leases)'"
                % (data, data),
            ])
            done = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
            if done.returncode == 0:
                made.append(name)
            else:
                print("plot: gnuplot failed: " + done.stderr.strip(), flush=True)
    return made


# ---------------------------------------------------------------------------
# Main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.environ.get("PZ_BUILD_DIR")
                        or os.path.join(ROOT, "build"),
                        help="meson build directory (default: $PZ_BUILD_DIR, else build)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of every configuration; tables show the median "
                             "and [min-max] (default 3)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every count (default 1)")
    parser.add_argument("--budget", type=float, default=720,
                        help="stop starting new repeats after this many seconds (default 720)")
    parser.add_argument("--run-timeout", type=float, default=60,
                        help="longest one run may take, in seconds (default 60)")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the perf/callgrind profile of the broker")
    parser.add_argument("--no-doc", action="store_true",
                        help="print only; do not write docs/PERFORMANCE.md and plots")
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs"),
                        help="where PERFORMANCE.md and the plots go (default: docs)")
    parser.add_argument("--only", choices=("curve", "audit", "journal"),
                        help="run only these rows (curve: CURVE on and off at batch 1024 "
                             "and 1; audit: --audit 0 and the default at batch 1024 and 1; "
                             "journal: on and off at batch 1024 and 1, and the replay) "
                             "and rewrite only their section of PERFORMANCE.md, and their "
                             "rows of its targets table")
    options = parser.parse_args()

    command = "python3 bench/pipeline.py" + "".join(
        " " + arg for arg in sys.argv[1:])
    print("Reproduce these figures with: %s   (from the repository root, after "
          "tools/build.sh)" % command, flush=True)
    tmp = tempfile.mkdtemp(prefix="playzmq-bench-")
    bench = Bench(options, tmp)
    for kind in ("broker", "worker", "source", "sink", "bare", "keygen"):
        if not os.path.exists(bench.exe(kind)):
            shutil.rmtree(tmp, ignore_errors=True)
            sys.exit("pipeline.py: %s is missing: run tools/build.sh first" % bench.exe(kind))

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    if options.only == "curve":
        return main_curve(options, bench, command)
    if options.only == "audit":
        return main_audit(options, bench, command)
    if options.only == "journal":
        return main_journal(options, bench, command)

    kinds = ("broker", "worker", "source", "sink", "bare", "primality")
    built = {kind: os.path.getmtime(bench.exe(kind)) for kind in kinds
             if os.path.exists(bench.exe(kind))}
    machine = machine_info(bench)
    print("machine: %(cpu)s, %(cores)d cores, Linux %(kernel)s, %(versions)s, "
          "load average %(load)s" % machine, flush=True)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    batches = sorted(COUNT_BATCH_OURS)
    workers_sweep = (1, 2, 4)
    source_counts = (1, 2, 4)
    R = {}          # name -> list of runs, one per repeat
    profile_md = primality = None

    def add(name, run):
        R.setdefault(name, []).append(run)
        return run

    try:
        for rep in range(options.repeat):
            if bench.time_left() < 60:
                print("budget: stopping before repeat %d" % (rep + 1), flush=True)
                break
            print("repeat %d of %d" % (rep + 1, options.repeat), flush=True)
            # (2) batch 1, one source, one request at a time; the ack path alone.
            for pair in range(ACK_PAIRS):
                add("reqrep", bench.bare_reqrep(bench.count(COUNT_REQREP)))
                add("ours-b1", bench.ours(1, 2, 1, bench.count(COUNT_REQREP), 1))
            # The same with a journal, next to the last one without: every
            # request waits for its sync (fewer numbers: a sync each).
            journal = bench.scratch("journal")
            add("ours-b1-j", bench.ours(1, 2, 1, bench.count(COUNT_B1_JOURNAL), 1,
                                        journal=journal, kind="ours-journal"))
            shutil.rmtree(journal, ignore_errors=True)
            # The same without coalescing: every message is its own dispatch.
            add("ours-b1-c0", bench.ours(1, 2, 1, bench.count(COUNT_REQREP), 1,
                                         broker_args=("--coalesce-ms", 0)))
            # No workers: nothing is ever reported, so the window must hold
            # every number of the run or the broker stops reading (as it should).
            add("ours-b1-acks", bench.ours(1, 0, 1, bench.count(COUNT_REQREP), 1, sink=False,
                                           broker_args=("--max-messages", 10**8,
                                                        "--max-inflight", 10**8)))
            # (3) batch 1, several sources.
            for sources in source_counts[1:]:
                add("ours-s%d" % sources, bench.ours(
                    1, 2, sources, bench.count(COUNT_SOURCES) // sources, 1))
            # The headline: every program with its defaults, a text sink
            # writing to a file; beside the bare pipeline with a text sink.
            add("ours-defaults", bench.ours(1024, 2, 1, bench.count(COUNT_DEFAULTS),
                                            sink_format="text", defaults=True,
                                            kind="ours-defaults"))
            add("bare-text", bench.bare_pipeline(1024, 2, bench.count(COUNT_DEFAULTS),
                                                 text=True))
            # (1) and the batch sweep, 2 workers; ours and bare side by side.
            for batch in batches:
                if batch == 1024:
                    # The same with a journal, just before the one without.
                    journal = bench.scratch("journal")
                    ran = add("ours-j1024", bench.ours(
                        batch, 2, 1, bench.count(COUNT_BATCH_OURS[batch]), SOURCE_PIPELINE,
                        journal=journal, kind="ours-journal"))
                add("ours-k%d" % batch, bench.ours(
                    batch, 2, 1, bench.count(COUNT_BATCH_OURS[batch]), SOURCE_PIPELINE))
                add("bare-k%d" % batch, bench.bare_pipeline(
                    batch, 2, bench.count(COUNT_BATCH_BARE[batch])))
                if batch != 1024:
                    continue
                # What the journal run left, read back through history.
                if not ran.get("error"):
                    add("replay", bench.replay(journal, ran["verdicts"]))
                    # One printing sink with the machine to itself: its own rate.
                    for fmt in SINK_FORMATS:
                        add("replay-" + fmt, bench.replay(journal, ran["verdicts"],
                                                          sink_format=fmt))
                shutil.rmtree(journal, ignore_errors=True)
                # Sinks printing every verdict at the full rate, to a file,
                # then into a pipe.
                for fmt in SINK_FORMATS:
                    add("ours-sink-" + fmt, bench.ours(
                        batch, 2, 1, bench.count(COUNT_SINK_FORMAT), SOURCE_PIPELINE,
                        sink_format=fmt, kind="ours-sink-" + fmt))
                for fmt in SINK_FORMATS:
                    add("ours-pipe-" + fmt, bench.ours(
                        batch, 2, 1, bench.count(COUNT_SINK_FORMAT), SOURCE_PIPELINE,
                        sink_format=fmt, kind="ours-pipe-" + fmt, pipe=True))
            add("bare-notest-k1024", bench.bare_pipeline(
                1024, 2, bench.count(COUNT_BATCH_BARE[1024]), test=False))
            add("ours-k1024-t2", bench.ours(
                1024, 2, 1, bench.count(COUNT_BATCH_OURS[1024]), SOURCE_PIPELINE, threads=2))
            # Workers sweep at batch 1024 (2 workers is the batch sweep's).
            for workers in workers_sweep:
                if workers == 2:
                    continue
                add("ours-w%d" % workers, bench.ours(
                    1024, workers, 1, bench.count(COUNT_BATCH_OURS[1024]), SOURCE_PIPELINE))
                add("bare-w%d" % workers, bench.bare_pipeline(
                    1024, workers, bench.count(COUNT_BATCH_BARE[1024])))
            # CURVE off and on, side by side; the audit off and at its default.
            bench.curve_pairs(add)
            bench.audit_pairs(add)
            # (4) many sources: the broker's memory.
            # The broker's own defaults here, bounded publish queue included.
            add("ours-rss", bench.ours(1024, 2, 16, bench.count(COUNT_RSS_EACH), 4,
                                       publish_hwm=None))
        R["ours-s1"] = R.get("ours-b1", [])
        for workers in workers_sweep:
            if workers == 2:
                R["ours-w2"], R["bare-w2"] = R.get("ours-k1024", []), R.get("bare-k1024", [])
        if not options.no_profile and bench.time_left() > 60:
            profile_md = profile_broker(bench, bench.tmp)
        primality = run_primality(bench)
    except KeyboardInterrupt:
        print("interrupted: stopping every process started", flush=True)
        Proc.stop_all()
        sys.exit(130)
    finally:
        Proc.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    rebuilt = [kind for kind, mtime in built.items()
               if not os.path.exists(bench.exe(kind)) or os.path.getmtime(bench.exe(kind)) != mtime]
    if rebuilt:
        print("WARNING: rebuilt during the run, so the figures mix two builds: %s"
              % ", ".join(bench.exe(kind) for kind in rebuilt), flush=True)
    report = summarise(bench, R, machine, command, date, batches, workers_sweep,
                       source_counts)
    if rebuilt:
        report["text"] = ("**Warning: %s changed during this run; the figures mix two "
                          "builds. Run again.**\n\n" % ", ".join(rebuilt)) + report["text"]
    print()
    print(report["text"])
    if profile_md:
        print("\n" + profile_md)
    if primality:
        print("\nprimality benchmark (%s):\n%s" % (bench.exe("primality"), primality))
    if options.no_doc:
        return 0
    os.makedirs(options.docs, exist_ok=True)
    plots = plot(bench, report["batch_rows"], report["worker_rows"], options.docs)
    write_doc(options, report, machine, command, date, plots, primality, profile_md)
    print("\nwrote %s%s" % (os.path.join(options.docs, "PERFORMANCE.md"),
                            "".join(", " + os.path.join(options.docs, p) for p in plots)))
    return 0


def summarise(bench, R, machine, command, date, batches, workers_sweep, source_counts):
    g = lambda name, key="rate": good(R.get(name, []), key)
    t1_ratio = ratios(R.get("ours-k1024", []), R.get("bare-k1024", []))
    t1_abs = g("ours-k1024")
    t2_ratio = ratios(R.get("ours-b1", []), R.get("reqrep", []), "source_rate", "rate")
    t2_acks = ratios(R.get("ours-b1-acks", []), R.get("reqrep", [])[::ACK_PAIRS],
                     "source_rate", "rate")
    # Not the sinks printing to files: their broker queues to them unbounded.
    rss_all = [run["broker_hwm_kib"] for runs in R.values() for run in runs
               if run.get("kind") in ("ours", "ours-journal", "ours-defaults")
               and run.get("broker_hwm_kib")]
    t4 = g("ours-rss", "broker_hwm_kib")
    s_rates = {s: g("ours-s%d" % s) for s in source_counts}
    grows = all(med(s_rates[b]) and med(s_rates[a]) and med(s_rates[b]) > med(s_rates[a])
                for a, b in zip(source_counts, source_counts[1:]))
    t3_cpu = {s: g("ours-s%d" % s, "broker_cpu") for s in source_counts}

    headline = ratios(R.get("ours-defaults", []), R.get("bare-text", []))
    journal = ratios(R.get("ours-j1024", []), R.get("ours-k1024", []))
    targets = [
        ("**headline**: every program with its defaults, batch 1024, text sink to a file: "
         "ours / bare pipeline of the same shape (issue 11)", "≥ %.1f" % T_HEADLINE,
         "%s (%s numbers/s)" % (spread(headline, ratio_fmt), si(med(g("ours-defaults")))),
         verdict(med(headline), T_HEADLINE)),
        ("(1) batch 1024, 2 workers: ours / bare pipeline", "≥ 0.75",
         spread(t1_ratio, ratio_fmt), verdict(med(t1_ratio), T1_RATIO)),
        ("(1) batch 1024, 2 workers: ours, numbers/s end to end", "≥ 10M/s",
         spread(t1_abs), verdict(med(t1_abs), T1_ABSOLUTE)),
        ("(2) batch 1, one source: ours (acked/s) / bare REQ→REP", "≥ 0.90",
         spread(t2_ratio, ratio_fmt), verdict(med(t2_ratio), T2_RATIO)),
        ("(3) batch 1, 1→2→4 sources: rate grows", "grows until cores busy",
         " → ".join(si(med(s_rates[s])) for s in source_counts),
         ("PASS" if grows else "MISS") + " (broker CPU %s)" % " → ".join(
             "%.0f%%" % (100 * med(t3_cpu[s])) if t3_cpu[s] else "-" for s in source_counts)),
        ("(4) broker VmHWM, 16 sources × --pipeline 4, batch 1024", "< 64 MiB",
         spread(t4, lambda v: "%.1f MiB" % (v / 1024)),
         ("PASS" if t4 and max(t4) < T4_RSS_KIB else "MISS")
         + (" (largest in any run: %.1f MiB)" % (max(rss_all) / 1024) if rss_all else "")),
        journal_target(journal),
        ("(C) batch 1024: CURVE on / off (paired runs)", "≥ %.1f" % T_CURVE_RATIO,
         spread(ratios(R.get("curve-on-k1024", []), R.get("curve-off-k1024", [])), ratio_fmt),
         verdict(med(ratios(R.get("curve-on-k1024", []), R.get("curve-off-k1024", []))),
                 T_CURVE_RATIO)),
        replay_target(g),
    ]
    # (S): each printing sink alone, into a pipe, against table (1)'s rate.
    sink_alone = {fmt: med(g("replay-" + fmt)) / med(g("ours-k1024"))
                  for fmt in SINK_FORMATS if g("replay-" + fmt) and g("ours-k1024")}
    if sink_alone:
        targets.append((
            "(S) a sink alone, `--format text / csv / json \\| wc -lc`: lines/s over (1)'s "
            "numbers/s (medians)", "≥ 1.0", " / ".join(
                ratio_fmt(sink_alone[fmt]) if fmt in sink_alone else "-"
                for fmt in SINK_FORMATS),
            verdict(min(sink_alone.values()) if len(sink_alone) == len(SINK_FORMATS)
                    else None, 1.0)))

    t_targets = table(["target", "goal", "measured: median [min-max]", "verdict"], targets)
    f2 = "%.2f".__mod__

    def t1_row(title, name, ours=True):
        return [title, spread(g(name)),
                spread(g(name, "source_rate")) if ours else "-",
                spread(g(name, "ack_p50_ms"), f2) if ours else "-",
                spread(g(name, "ack_p99_ms"), f2) if ours else "-",
                cpu_fmt(R.get(name, [])), spread(g(name, "broker_hwm_kib"), mib),
                " ".join(str(v) for v in g(name, "primes")) or "-"]
    t1 = table(["run", "numbers/s end to end", "source acked/s", "ack p50 ms", "ack p99 ms",
                "CPU, % of one core (median)", "broker VmHWM MiB", "primes seen"], [
        t1_row("PlayØMQ: 2 workers × --threads 1, source --pipeline %d" % SOURCE_PIPELINE,
               "ours-k1024"),
        t1_row("bare ZeroMQ pipeline, 2 workers", "bare-k1024", False),
        ["**ratio PlayØMQ / bare** (paired runs)", "**%s**" % spread(t1_ratio, ratio_fmt),
         "", "", "", "", "", ""],
        t1_row("bare, no primality test (messaging only)", "bare-notest-k1024", False),
        t1_row("PlayØMQ: 2 workers × --threads 2 (the default: one per core)",
               "ours-k1024-t2"),
    ])
    t2 = table(["run", "round trips (numbers)/s", "ack p50 ms", "ack p99 ms", "ratio to bare",
                "CPU, % of one core"], [
        ["bare REQ→REP, 9 bytes", spread(g("reqrep")),
         spread(g("reqrep", "ack_p50_ms"), "%.3f".__mod__),
         spread(g("reqrep", "ack_p99_ms"), "%.3f".__mod__), "1", "-"],
        ["PlayØMQ source --batch 1, full pipeline (2 workers, sink)",
         spread(g("ours-b1", "source_rate")),
         spread(g("ours-b1", "ack_p50_ms"), "%.3f".__mod__),
         spread(g("ours-b1", "ack_p99_ms"), "%.3f".__mod__), spread(t2_ratio, ratio_fmt),
         cpu_fmt(R.get("ours-b1", []))],
        ["PlayØMQ, the same with `--coalesce-ms 0` (a dispatch per message)",
         spread(g("ours-b1-c0", "source_rate")),
         spread(g("ours-b1-c0", "ack_p50_ms"), "%.3f".__mod__),
         spread(g("ours-b1-c0", "ack_p99_ms"), "%.3f".__mod__),
         spread(ratios(R.get("ours-b1-c0", []), R.get("reqrep", [])[::ACK_PAIRS],
                       "source_rate", "rate"), ratio_fmt),
         cpu_fmt(R.get("ours-b1-c0", []))],
        ["PlayØMQ source --batch 1, broker alone (no workers, no sink)",
         spread(g("ours-b1-acks", "source_rate")),
         spread(g("ours-b1-acks", "ack_p50_ms"), "%.3f".__mod__),
         spread(g("ours-b1-acks", "ack_p99_ms"), "%.3f".__mod__), spread(t2_acks, ratio_fmt),
         cpu_fmt(R.get("ours-b1-acks", []))],
    ])
    t3 = table(["sources (--batch 1, --pipeline 1)", "numbers/s end to end", "ack p50 ms",
                "ack p99 ms", "CPU, % of one core (median)"], [
        [s, spread(s_rates[s]), spread(g("ours-s%d" % s, "ack_p50_ms"), "%.3f".__mod__),
         spread(g("ours-s%d" % s, "ack_p99_ms"), "%.3f".__mod__),
         cpu_fmt(R.get("ours-s%d" % s, []))] for s in source_counts])
    t4t = table(["run", "broker VmHWM MiB", "numbers/s end to end", "ack p50 ms", "ack p99 ms"], [
        ["16 sources × --pipeline 4, batch 1024, 2 workers", spread(t4, mib),
         spread(g("ours-rss")), spread(g("ours-rss", "ack_p50_ms"), "%.2f".__mod__),
         spread(g("ours-rss", "ack_p99_ms"), "%.2f".__mod__)]])
    batch_rows = [(b, g("ours-k%d" % b), g("bare-k%d" % b)) for b in batches]
    worker_rows = [(w, g("ours-w%d" % w), g("bare-w%d" % w)) for w in workers_sweep]
    tb = table(["--batch", "PlayØMQ numbers/s", "bare numbers/s", "ratio", "ack p50 ms",
                "numbers per dispatch", "PlayØMQ CPU, % of one core"], [
        [b, spread(o), spread(x), spread(ratios(R.get("ours-k%d" % b, []),
                                                 R.get("bare-k%d" % b, [])), ratio_fmt),
         spread(g("ours-k%d" % b, "ack_p50_ms"), "%.2f".__mod__),
         spread(g("ours-k%d" % b, "per_dispatch"), "%.0f".__mod__),
         cpu_fmt(R.get("ours-k%d" % b, []))]
        for b, o, x in batch_rows])
    tw = table(["workers", "PlayØMQ numbers/s", "bare numbers/s", "ratio"], [
        [w, spread(o), spread(x), spread(ratios(R.get("ours-w%d" % w, []),
                                                 R.get("bare-w%d" % w, [])), ratio_fmt)]
        for w, o, x in worker_rows])
    errors = [describe(run) for runs in R.values() for run in runs if run.get("error")]
    # (hand-written block to follow, or None; markdown)
    sections = [("headline", "## Headline: the programs with their defaults\n\n"
                 + headline_section(R, g, headline))] + [(None, text) for text in [
        "## Targets\n\n" + t_targets,
        "## (1) Batches of 1024, 2 workers, random values below 2^63\n\n" + t1,
        "## (2) --batch 1, one source: the ack path\n\n" + t2,
        "## (3) --batch 1, sources in parallel\n\n" + t3,
        "## (4) The broker's memory under many sources\n\n" + t4t,
        "## Sweep: numbers per message (2 workers, one source --pipeline %d)\n\n"
        % SOURCE_PIPELINE + tb,
        "## Sweep: workers (batch 1024, one source --pipeline %d)\n\n" % SOURCE_PIPELINE + tw,
    ]] + [
        ("journal", JOURNAL_TITLE + "\n\n" + journal_section(R, g, journal)),
        ("curve", curve_section(R, g)),
        ("audit", audit_section(R, g)),
        ("cpu", "## CPU per number: broker and workers\n\n" + cpu_section(R)),
        ("sinks", "## Sinks printing every verdict, at full rate\n\n"
         + sinks_section(R, g)),
    ]
    if errors:
        sections.append((None, "## Runs that failed\n\n" + "\n".join("- " + e for e in errors)))
    runs_text = "\n".join(describe(run) for runs in R.values() for run in runs
                          if not run.get("label"))
    configurations = "\n\n".join("`%s`:\n\n%s" % (name, commands_md(R, name))
                                  for name in R if commands_md(R, name))
    return {"sections": sections, "text": "\n\n".join(text for _, text in sections),
            "batch_rows": batch_rows, "worker_rows": worker_rows, "runs": runs_text,
            "commands": configurations}


def row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(header, rows):
    return "\n".join([row(header), row(["---"] * len(header))] + [row(r) for r in rows])


def mib(kib):
    return "%.1f" % (kib / 1024)


def commands_md(R, name):
    """The commands of a configuration (its first run), as a sh block."""
    run = next((run for run in R.get(name, []) if run.get("commands")), None)
    return "```sh\n%s\n```" % run["commands"] if run else ""


def per_number(run, role):
    """CPU nanoseconds role spent per number of a good run, or None."""
    if run.get("error") or not run.get("count") or role not in run.get("cpu_s", {}):
        return None
    return 1e9 * run["cpu_s"][role] / run["count"]


def per_numbers(runs, role):
    return [v for v in (per_number(run, role) for run in runs) if v is not None]


def headline_section(R, g, headline):
    rows = [[title, spread(g(name)),
             spread(g(name, "lines")) + " (%s bytes each)" % spread(
                 g(name, "bytes_per_line"), "%.1f".__mod__),
             cpu_fmt(R.get(name, [])), spread(g(name, "broker_hwm_kib"), mib),
             " ".join(str(v) for v in g(name, "primes")) or "-"]
            for title, name in (
                ("PlayØMQ, defaults: broker, 2 workers, `--batch 1024` source, text sink "
                 "`--tags PC` to a file", "ours-defaults"),
                ("bare ZeroMQ pipeline, 2 workers, its sink printing the same lines to a "
                 "file", "bare-text"))]
    rows.append(["**ratio PlayØMQ / bare** (paired runs)",
                 "**%s**" % spread(headline, ratio_fmt), "", "", "", ""])
    return "\n\n".join([
        ("Every program as the README runs it: no tuning flag (the broker's "
         "`--publish-hwm` 1000, no journal; workers one thread per core, `--pipeline` 32; "
         "the source's `--pipeline` %d; the sink's `--hwm` 10000, text), only the "
         "loopback endpoints, the counts, the source's range and seed, and the broker's "
         "`--stats-format json`. The rate is the count over the time from starting the "
         "source to the sink's exit at its count; the sink's file is counted afterwards."
         % SOURCE_PIPELINE),
        table(["run", "numbers/s end to end", "lines in the file", "CPU, % of one core "
               "(median)", "broker VmHWM MiB", "primes seen"], rows),
        "Commands, PlayØMQ:\n\n" + commands_md(R, "ours-defaults"),
        "Bare:\n\n" + commands_md(R, "bare-text")])


JOURNAL_TITLE = "## The journal (`--journal`): on and off"


def journal_target(journal):
    """The targets table's row (J), from the paired on / off ratios."""
    return ("(J) batch 1024: journal on / off (paired runs)", "≥ %.1f" % T_JOURNAL_RATIO,
            spread(journal, ratio_fmt), verdict(med(journal), T_JOURNAL_RATIO))


def replay_target(g):
    """The targets table's row (R), from the replay runs."""
    return ("(R) a sink reading the journal from history, warm page cache", "≥ %s/s"
            % si(T_REPLAY), spread(g("replay")), verdict(med(g("replay")), T_REPLAY))


def journal_section(R, g, journal):
    f2, f3 = "%.2f".__mod__, "%.3f".__mod__

    def per_commit(name):
        return [run["count"] / run["commits"] for run in R.get(name, [])
                if run.get("commits") and not run.get("error")]

    def journal_row(title, name, ratio=None, key="rate"):
        """ratio None: the reference row (journal off)."""
        return [title, spread(g(name, key)),
                spread(ratio, ratio_fmt) if ratio is not None else "1",
                spread(g(name, "ack_p50_ms"), f3), spread(g(name, "ack_p99_ms"), f3),
                spread(g(name, "commits"), "%.0f".__mod__) if per_commit(name) else "-",
                spread(per_commit(name), "%.0f".__mod__), cpu_fmt(R.get(name, []))]
    header = ["run", "numbers/s", "ratio on / off (paired)", "ack p50 ms", "ack p99 ms",
              "journal commits", "numbers per commit", "CPU, % of one core (median)"]
    # Batch 1: the journal run came right after the last run without of its repeat.
    b1_off = R.get("ours-b1", [])[ACK_PAIRS - 1::ACK_PAIRS]
    b1_ratio = ratios(R.get("ours-b1-j", []), b1_off, "source_rate", "source_rate")
    t_1024 = table([h.replace("numbers/s", "numbers/s end to end") for h in header], [
        journal_row("journal off: 2 workers × --threads 1, source --pipeline %d"
                    % SOURCE_PIPELINE, "ours-k1024"),
        journal_row("journal on, the same flags and `--journal DIR`", "ours-j1024", journal),
    ])
    t_b1 = table([h.replace("numbers/s", "acked/s (the source's)") for h in header], [
        journal_row("journal off: one source `--batch 1 --pipeline 1`, 2 workers, sink",
                    "ours-b1", key="source_rate"),
        journal_row("journal on, the same flags and `--journal DIR`", "ours-b1-j", b1_ratio,
                    "source_rate"),
    ])
    p50_ratio = ratios(R.get("ours-b1-j", []), b1_off, "ack_p50_ms", "ack_p50_ms")
    p99_ratio = ratios(R.get("ours-b1-j", []), b1_off, "ack_p99_ms", "ack_p99_ms")
    t_replay = table(["run", "verdicts", "verdicts/s from history", "goal",
                      "broker CPU, % of one core", "broker CPU ns per verdict",
                      "messages from history"], [
        ["`playzmq-sink --from all --format none --tags PC --count N`, the broker "
         "restarted on the journal the batch-1024 run left, nothing else running",
         spread(g("replay", "count"), si), spread(g("replay")), "≥ %s/s" % si(T_REPLAY),
         spread([100 * v for v in g("replay", "broker_cpu")], "%.0f".__mod__),
         spread(per_numbers(R.get("replay", []), "broker"), "%.1f".__mod__),
         spread(g("replay", "filled"), "%.0f".__mod__)]])
    steal = [100 * run["steal"] for name in ("ours-j1024", "ours-k1024")
             for run in R.get(name, []) if run.get("steal") is not None]
    return "\n\n".join([
        "### Batch 1024: throughput\n\nThe journal run comes just before the run without "
        "it in each repeat; the ratio is between those two. *numbers per commit*: the "
        "count over the syncs the broker made (its final stats' `commits`)."
        + (" The hypervisor took %s %% of the machine's time during these runs (steal, "
           "/proc/stat): the share the programs could not have." % spread(steal, "%.0f".__mod__)
           if steal else ""),
        t_1024,
        "### Batch 1: the ack's latency\n\nOne source, one request at a time: every ack "
        "waits for the sync of the block holding its request. Paired with the last run "
        "without a journal of the same repeat: acked/s %s, ack p50 %s, p99 %s (on / off)."
        % (spread(b1_ratio, ratio_fmt), spread(p50_ratio, ratio_fmt),
           spread(p99_ratio, ratio_fmt)),
        t_b1,
        "### Reading the journal back: history\n\nThe rate is N over the time from starting "
        "the sink to its exit at N verdicts (its start-up included). Before it, the "
        "journal's files are read once, so they come from the page cache; the broker's "
        "final stats must show nothing accepted, published or recovered (the live path "
        "was idle). Broker CPU is its history thread's and main loop's, over the same "
        "time.",
        t_replay,
        "Commands: batch 1024 with the journal, batch 1 with it, then the replay (on "
        "the first run's journal):\n\n%s\n\n%s\n\n%s" % (
            commands_md(R, "ours-j1024"), commands_md(R, "ours-b1-j"),
            commands_md(R, "replay"))])


CURVE_TITLE = "## CURVE (`--curve-cert`): on and off"


def curve_section(R, g):
    """The CURVE section, its title included: each batch's pair of runs,
    plaintext then CURVE, and their ratio."""
    f2, f3 = "%.2f".__mod__, "%.3f".__mod__
    rows = []
    pairs = [(batch, "", "") for batch in CURVE_BATCHES]
    if R.get("curve-on-p-k1024"):
        pairs.insert(1, (1024, "-p", ", sink on P only"))
    for batch, variant, sink in pairs:
        off, on = ("curve-off%s-k%d" % (variant, batch), "curve-on%s-k%d" % (variant, batch))
        for title, name in (("plaintext", off), ("CURVE", on)):
            rows.append(["%d" % batch, title + sink, spread(g(name)),
                         spread(g(name, "source_rate")),
                         spread(g(name, "ack_p50_ms"), f3 if batch == 1 else f2),
                         spread(g(name, "ack_p99_ms"), f3 if batch == 1 else f2),
                         cpu_fmt(R.get(name, []))])
        rows.append(["%d" % batch, "**ratio CURVE / plaintext**%s (paired)" % sink,
                     "**%s**" % spread(ratios(R.get(on, []), R.get(off, [])), ratio_fmt),
                     spread(ratios(R.get(on, []), R.get(off, []), "source_rate",
                                   "source_rate"), ratio_fmt), "", "", ""])
    ratio = ratios(R.get("curve-on-k1024", []), R.get("curve-off-k1024", []))
    return "\n\n".join([
        CURVE_TITLE,
        "The same runs with and without CURVE, side by side in each repeat (plaintext "
        "first): at batch 1024 the shape of table (1) (2 workers × --threads 1, one source "
        "`--pipeline %d`, counting sink), at batch 1 that of table (2) (one source "
        "`--batch 1 --pipeline 1`, 2 workers, counting sink). With CURVE every program "
        "gets the flags the README shows: the broker `--curve-cert broker.cert_secret "
        "--curve-allow allow`, the others `--curve-cert ROLE.cert_secret --curve-server "
        "broker.cert`, the keys made first by `playzmq-keygen broker` and "
        "`playzmq-keygen ROLE --role ROLE` for source, worker and sink, the three "
        "public certificates copied into `allow/`. Every message is then encrypted by "
        "its sender and decrypted by its receiver (libsodium's crypto_box, in the "
        "ZeroMQ I/O threads). The rows *sink on P only* run the same numbers (the same "
        "seed) with a sink that prints primes only, as the demo's does: the P and C "
        "publications then carry next to nothing, and the broker encrypts or decrypts "
        "18 bytes per number instead of 27. "
        "Target: CURVE ≥ %.1f of plaintext at batch 1024, the same flags: %s (%s)."
        % (SOURCE_PIPELINE, T_CURVE_RATIO, spread(ratio, ratio_fmt),
           verdict(med(ratio), T_CURVE_RATIO)),
        table(["--batch", "run", "numbers/s end to end", "source acked/s", "ack p50 ms",
               "ack p99 ms", "CPU, % of one core (median)"], rows),
        "Commands (CURVE; plaintext is the same without the --curve flags), batch 1024 "
        "then batch 1:\n\n%s\n\n%s" % (commands_md(R, "curve-on-k1024"),
                                          commands_md(R, "curve-on-k1")),
    ])


AUDIT_TITLE = "## The audit (`--audit`): its cost at the default"


def audit_section(R, g):
    """The audit section, its title included: each batch's pair of runs,
    --audit 0 then the default, and their ratio."""
    f2, f3 = "%.2f".__mod__, "%.3f".__mod__
    rows = []
    for batch in AUDIT_BATCHES:
        off, on = "audit-off-k%d" % batch, "audit-on-k%d" % batch
        for title, name in (("`--audit 0`", off), ("default (0.01, at least 1 per report)", on)):
            rows.append(["%d" % batch, title, spread(g(name)), spread(g(name, "source_rate")),
                         spread(g(name, "ack_p50_ms"), f3 if batch == 1 else f2),
                         spread(g(name, "ack_p99_ms"), f3 if batch == 1 else f2),
                         cpu_fmt(R.get(name, []))])
        rows.append(["%d" % batch, "**ratio default / off** (paired)",
                     "**%s**" % spread(ratios(R.get(on, []), R.get(off, [])), ratio_fmt),
                     spread(ratios(R.get(on, []), R.get(off, []), "source_rate",
                                   "source_rate"), ratio_fmt), "", "", ""])
    ratio = ratios(R.get("audit-on-k1024", []), R.get("audit-off-k1024", []))
    ratio1 = ratios(R.get("audit-on-k1", []), R.get("audit-off-k1", []), "source_rate",
                    "source_rate")
    return "\n\n".join([
        AUDIT_TITLE,
        "The broker tests a sample of every report again before publishing it "
        "(proto/PROTOCOL.md, \"Audit\"): at the default 1 %% of the records and at least "
        "one per report, so at batch 1 every record. The same runs with the audit off "
        "(`--audit 0`) and at its default (no flag), side by side in each repeat, shaped "
        "as the CURVE pairs: batch 1024 as table (1), batch 1 as table (2). Target: the "
        "default costs at most 5 %% of throughput (ratio ≥ %.2f): batch 1024 %s (%s), "
        "batch 1 %s (%s)."
        % (T_AUDIT_RATIO, spread(ratio, ratio_fmt), verdict(med(ratio), T_AUDIT_RATIO),
           spread(ratio1, ratio_fmt), verdict(med(ratio1), T_AUDIT_RATIO)),
        table(["--batch", "broker", "numbers/s end to end", "source acked/s", "ack p50 ms",
               "ack p99 ms", "CPU, % of one core (median)"], rows),
        "Commands (the default; `--audit 0` adds that flag to the broker), batch 1024 "
        "then batch 1:\n\n%s\n\n%s" % (commands_md(R, "audit-on-k1024"),
                                          commands_md(R, "audit-on-k1")),
    ])


def main_audit(options, bench, command):
    """--only audit: the audit pairs, and their section of PERFORMANCE.md."""
    return main_only(options, bench, command, bench.audit_pairs, audit_section,
                     AUDIT_TITLE, "audit")


def main_curve(options, bench, command):
    """--only curve: the CURVE pairs, and their section of PERFORMANCE.md."""
    return main_only(options, bench, command, bench.curve_pairs, curve_section,
                     CURVE_TITLE, "curve")


def main_journal(options, bench, command):
    """--only journal: the journal pairs, their section of PERFORMANCE.md
    and their rows (J) and (R) of its targets table."""
    def section(R, g):
        return JOURNAL_TITLE + "\n\n" + journal_section(
            R, g, ratios(R.get("ours-j1024", []), R.get("ours-k1024", [])))

    def targets(R, g):
        journal = ratios(R.get("ours-j1024", []), R.get("ours-k1024", []))
        return [journal_target(journal), replay_target(g)]
    return main_only(options, bench, command, bench.journal_pairs, section,
                     JOURNAL_TITLE, "journal", targets)


def main_only(options, bench, command, pairs, section, title, key, targets=None):
    """--only KEY: runs pairs, prints them, and rewrites their section of
    PERFORMANCE.md (and nothing else in it but the targets table's rows
    that targets(R, g) returns, if given: found by their first cell)."""
    R = {}

    def add(name, run):
        R.setdefault(name, []).append(run)
        return run
    try:
        for rep in range(options.repeat):
            if bench.time_left() < 30:
                print("budget: stopping before repeat %d" % (rep + 1), flush=True)
                break
            print("repeat %d of %d" % (rep + 1, options.repeat), flush=True)
            pairs(add)
    except KeyboardInterrupt:
        print("interrupted: stopping every process started", flush=True)
        Proc.stop_all()
        return 130
    finally:
        Proc.stop_all()
        shutil.rmtree(bench.tmp, ignore_errors=True)
    g = lambda name, key="rate": good(R.get(name, []), key)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info(bench)
    text = section(R, g) + "\n\n" + (
        "Measured on %s by `%s` (%s, %d cores, load average at the start %s)."
        % (date, command, machine["cpu"], machine["cores"], machine["load"]))
    errors = [describe(run) for runs in R.values() for run in runs if run.get("error")]
    if errors:
        text += "\n\nRuns that failed:\n\n" + "\n".join("- " + e for e in errors)
    print()
    print(text)
    if options.no_doc:
        return 0
    path = os.path.join(options.docs, "PERFORMANCE.md")
    with open(path) as handle:
        old = handle.read()
    for row in (targets(R, g) if targets else []):
        # Said in the row: its figure is not from the run the rest is from.
        row = (row[0], row[1], "%s (`--only %s`, %s)" % (row[2], key, date), row[3])
        lines = old.split("\n")
        for index, line in enumerate(lines):
            if line.startswith("| " + row[0] + " |"):
                lines[index] = "| " + " | ".join(row) + " |"
        old = "\n".join(lines)
    begin, _ = hand_markers(key)
    block = hand_block(old, key, "*(Not written yet: what the figures above say.)*\n")
    if title in old and begin in old:
        head, rest = old.split(title, 1)
        tail = rest.split(hand_markers(key)[1], 1)[1].lstrip("\n")
        new = head + text + "\n\n" + block + "\n" + tail
    else:
        anchor = "## CPU per number" if "## CPU per number" in old else "## Plots"
        head, tail = old.split(anchor, 1) if anchor in old else (old, "")
        new = head + text + "\n\n" + block + "\n" + (anchor + tail if tail else "")
    with open(path, "w") as handle:
        handle.write(new)
    print("\nwrote the %s section of %s" % (key, path))
    return 0


def cpu_section(R):
    def cells(name):
        runs = R.get(name, [])
        feeds = [w / b for w, b in ((per_number(r, "worker"), per_number(r, "broker"))
                                    for r in runs) if w is not None and b]
        return [spread(good(runs, "rate")), spread(per_numbers(runs, "broker"), "%.1f".__mod__),
                spread(per_numbers(runs, "worker"), "%.1f".__mod__), spread(feeds, ratio_fmt)]
    rows = [["PlayØMQ, batch %d (2 workers × --threads 1, source --pipeline %d, counting "
             "sink)" % (batch, SOURCE_PIPELINE)] + cells("ours-k%d" % batch)
            for batch in (1, 128, 1024)]
    rows += [["PlayØMQ, batch 1024, journal on (the same flags and `--journal`)"]
             + cells("ours-j1024"),
             ["PlayØMQ, batch 1024, every program with its defaults, text sink (the "
              "headline)"] + cells("ours-defaults"),
             ["bare ZeroMQ pipeline, batch 1024, 2 workers (for comparison)"]
             + cells("bare-k1024")]
    return "\n\n".join([
        "**Measured**: each process's CPU time, every thread, user and system, read "
        "when the run ends (the sink's exit) less what it was when the source started, "
        "summed per role and divided by the numbers of the run: the sum of its threads' "
        "run times in /proc/PID/task/*/schedstat (nanoseconds) while it runs, its "
        "rusage (`wait4`, microseconds) once it has exited. **Derived**: *worker cores one broker core feeds* = worker "
        "ns/number ÷ broker ns/number, per run, then the median: the worker cores a "
        "broker kept busy on one core of this machine would keep busy.",
        table(["run", "numbers/s end to end (measured)", "broker CPU ns/number (measured)",
               "worker CPU ns/number (measured)",
               "worker cores one broker core feeds (derived)"], rows)])


def sinks_section(R, g):
    rows = [["`--format none` (counting only: the pipeline's rate)", spread(g("ours-k1024")),
             "1", "-", cpu_fmt(R.get("ours-k1024", [])), spread(g("ours-k1024",
                                                                  "source_rate"))]]
    for prefix, title in (("ours-sink-", "`--format %s` to a file"),
                          ("ours-pipe-", "`--format %s \\| wc -lc` (into a pipe)")):
        for fmt in SINK_FORMATS:
            name = prefix + fmt
            if not R.get(name):
                continue
            rows.append([title % fmt, spread(g(name)),
                         spread(ratios(R.get(name, []), R.get("ours-k1024", [])), ratio_fmt),
                         spread(g(name, "bytes_per_line"), "%.1f".__mod__),
                         cpu_fmt(R.get(name, [])), spread(g(name, "source_rate"))])
    for fmt in SINK_FORMATS:
        name = "replay-" + fmt
        if not R.get(name):
            continue
        rows.append(["`--format %s \\| wc -lc`, alone: reading the batch-1024 journal "
                     "run's verdicts from history, nothing else running" % fmt,
                     spread(g(name)),
                     "%s of the pipeline's rate (medians)" % ratio_fmt(
                         med(g(name)) / med(g("ours-k1024")))
                     if g(name) and g("ours-k1024") else "-",
                     spread(g(name, "bytes_per_line"), "%.1f".__mod__),
                     cpu_fmt(R[name]), "-"])
    return "\n\n".join([
        "The batch-1024 pipeline of table (1) (2 workers × --threads 1, source "
        "`--pipeline %d`, broker `--publish-hwm 0`), its measuring sink `--tags PC --hwm 0` "
        "printing every verdict in the format named, to a file, then into a pipe that "
        "`wc -lc` reads (as `playzmq-sink ... | grep` or a script would). *lines/s* is "
        "the count over the time from starting the source to the sink's exit at its "
        "count (to wc's exit for a pipe; the file is counted afterwards, wc's count is "
        "checked); the ratio is to the counting sink's run of the same repeat. On two "
        "cores the printing sink (and wc) take CPU from the workers, so these rows "
        "measure the whole machine's share as much as the sink. Below 1, the sink is the bottleneck: the source still runs at "
        "full speed (*source acked/s*) and the broker queues for the sink. The last "
        "rows are one printing sink with the two cores to itself (and the broker's history "
        "thread): the journal the batch-1024 run left, read back with `--from all`, "
        "as the replay of the journal section does it, every line written into "
        "a pipe that `wc -lc` reads (its count checked; the time runs to wc's exit, "
        "its CPU in the CPU column): what the sink formats and writes when the "
        "destination costs little. Not into a file: on this virtual machine the "
        "first touch of fresh page-cache pages costs more than the formatting "
        "(the journal section says how much)." % SOURCE_PIPELINE,
        table(["sink", "lines/s", "ratio to the pipeline (paired)", "bytes per line",
               "CPU, % of one core (median)", "source acked/s"], rows),
        "Commands (text to a file, then into a pipe; csv and json differ only in "
        "`--format`):\n\n" + commands_md(R, "ours-sink-text") + "\n\n"
        + commands_md(R, "ours-pipe-text")])


def hand_markers(key):
    """The markers around a hand-written block the script keeps: the one
    of old (key None) or one after a section (key: its name)."""
    if key is None:
        return HAND_BEGIN, HAND_END
    return ("<!-- hand-written %s: begin (kept by bench/pipeline.py) -->" % key,
            "<!-- hand-written %s: end -->" % key)


def hand_block(old, key, default):
    """A hand-written block, with its markers: its text in the old
    document if there is one, else default."""
    begin, end = hand_markers(key)
    text = default
    if begin in old and end in old:
        text = old.split(begin, 1)[1].split(end, 1)[0].strip("\n") + "\n"
    return begin + "\n" + text + end + "\n"


def write_doc(options, report, machine, command, date, plots, primality, profile_md):
    path = os.path.join(options.docs, "PERFORMANCE.md")
    old = ""
    if os.path.exists(path):
        with open(path) as previous:
            old = previous.read()
    placeholder = ("*(Not written yet: what the figures above say, written by hand from "
                   "a run on a quiet machine; the script keeps this text.)*\n")
    sections = []
    for key, text in report["sections"]:
        sections.append(text + "\n")
        if key:
            sections.append(hand_block(old, key, placeholder))
    parts = [
        "# Performance\n",
        "Generated by `bench/pipeline.py` on %s, except the sections between "
        "hand-written markers, which the script keeps. Every figure below comes from "
        "that one run: rerun the command to get yours. The command of each "
        "configuration is at the end (and under each of the newer sections).\n" % date,
        "```sh\ntools/build.sh\n%s\n```\n" % command,
        "## Machine\n\n"
        "| | |\n|---|---|\n"
        "| CPU | %(cpu)s |\n| cores | %(cores)d |\n| OS | %(os)s |\n"
        "| kernel | Linux %(kernel)s |\n| ZeroMQ | %(versions)s |\n"
        "| journals and sinks' files | %(scratch)s |\n"
        "| load average at the start | %(load)s (the machine is shared: figures are "
        "noisy, hence ratios of runs made side by side) |\n" % machine,
        "## How it is measured\n\n"
        "- Every configuration runs %d times (the batch-1 ack path, the noisiest figure, "
        "%d times); ours and the bare baseline alternate, and each "
        "ratio is taken between the two runs made next to each other. Tables show the "
        "median and, in brackets, the smallest and largest of the repeats.\n"
        "- Every process is separate and talks over tcp on 127.0.0.1 (ports chosen by the "
        "kernel; the broker binds all five endpoints, history included, there). Sources "
        "send uniformly random values below 2^63 (`--min 0 --max "
        "9223372036854775807`, splitmix64, seeds 1, 2, ...).\n"
        "- *numbers/s end to end*: the count divided by the time from starting the "
        "source(s) to the sink's exit after its last verdict (the sink counts P and C "
        "records and exits at the expected count, so every verdict arrived). *source "
        "acked/s* is what the source itself prints (first send to last ack).\n"
        "- PlayØMQ: `playzmq-broker` with its defaults (`--coalesce-ms 10`, window "
        "`--max-inflight` 1,048,576 numbers) but `--publish-hwm 0`, "
        "N `playzmq-worker --threads 1` processes, `playzmq-sink --tags PC --format none "
        "--hwm 0`, sources `--pipeline %d` unless stated; the headline runs every program "
        "with its defaults instead. The broker writes its stats as JSON (`--stats 0 "
        "--stats-format json`, docs/STATS.md); the bench reads its final object: "
        "*numbers per dispatch* is `accepted` over `dispatches` (source messages merge "
        "while they wait for a worker), *journal commits* is `commits`.\n"
        "- With a journal, the broker's `--journal` is a new directory in the scratch "
        "directory above (its file system decides what a sync costs), removed after the "
        "run (after the replay for batch 1024).\n"
        "- The bare pipeline (`bench/bare.c`, czmq zsock API) has PlayØMQ's shape: source "
        "PUSH → broker PULL, PUB a copy (`zmq_msg_copy`) and PUSH on → workers PULL, test "
        "every number with **the same `pz_prime_check` from proto/prime.h**, PUSH a P and "
        "a C message → broker PULL → PUB → sink SUB (P, C) counting (with `--text`, also "
        "printing `P 97` lines to a file, for the headline). No acks, ids, leases, "
        "window, validation or sequence numbers; its PUB queue is unbounded so no verdict "
        "is dropped. "
        "*bare, no primality test* is the same with the test replaced by the lowest bit "
        "of the number: the messaging ceiling. The bare REQ→REP is one REQ and one REP "
        "process exchanging 9-byte messages.\n"
        "- Broker VmHWM is read from /proc/<pid>/status just before the broker is "
        "stopped. *CPU* is each role's user+system time over the measured interval, in "
        "%% of one core (summed over its processes; 200 = both cores): the sum of each "
        "thread's run time in /proc/PID/task/*/schedstat while the process runs, its "
        "rusage (`wait4`) once it has exited.\n"
        "- Batch 1024 sends the same count with the same seed through both pipelines, so "
        "*primes seen* must be equal: the same numbers got the same verdicts.\n"
        % (options.repeat, options.repeat * ACK_PAIRS, SOURCE_PIPELINE),
    ] + sections
    if plots:
        parts.append("## Plots\n\n" + "\n\n".join("![%s](%s)" % (p, p) for p in plots) + "\n")
    else:
        parts.append("## Plots\n\ngnuplot was not installed (Debian: `gnuplot-nox`), "
                     "so no plot was drawn.\n")
    if primality:
        parts.append("## The primality test: `build/bench/playzmq-bench-primality`\n\n"
                     "Run by the same command, after the pipeline runs:\n\n"
                     "```\n%s\n```\n" % primality)
    parts.append("## Profile of the broker at full load\n\n" + (
        profile_md or "(skipped: `--no-profile`, or neither perf nor valgrind installed)")
        + "\n")
    parts.append(hand_block(old, None, "## Where the time goes\n\n(Not written yet: read "
                                       "the profile above.)\n"))
    # Ranges have a bench of their own (bench/ranges.py, beside the primesieve
    # program): its section is kept as it wrote it.
    parts.append(hand_block(old, "ranges", "## Ranges\n\n(Not measured yet: run "
                                           "`python3 bench/ranges.py`.)\n"))
    parts.append("## The command of every configuration\n\n"
                 "As the bench ran them (its first run of each), with the programs' default "
                 "ports on 127.0.0.1 where the bench lets the kernel choose; the bare "
                 "broker prints the endpoints it bound.\n\n%s\n" % report["commands"])
    parts.append("## Every run\n\n```\n%s\n```\n" % report["runs"])
    with open(path, "w") as out:
        out.write("\n".join(parts))


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        Proc.stop_all()
