#!/usr/bin/env python3
"""pipeline.py - PlayØMQ end to end, beside plain ZeroMQ, in one run

Starts the real programs (a broker, N workers, S sources and a `--format
none` sink) on free loopback ports, times a fixed count of numbers, and
runs the same shapes as plain ZeroMQ (build/bench/playzmq-bench-bare: a
bare REQ->REP loop and a bare pipeline with no acks and no bookkeeping) in
the same run, alternating ours and bare so that a busy machine slows both
alike. It prints the figures and the ratios the performance issue targets,
and writes docs/PERFORMANCE.md and the plots docs/perf-*.png (gnuplot).

    python3 bench/pipeline.py                 # everything, ~6-9 minutes
    python3 bench/pipeline.py --repeat 1 --scale 0.3 --no-doc   # a quick look

Every process it starts is in its own process group and is stopped when
the script ends, however it ends (normally, an exception, Ctrl-C, SIGTERM).
Timings stay here and in the docs, never in `meson test`.
"""

import argparse
import datetime
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

# Targets of the performance issue.
T1_RATIO, T1_ABSOLUTE = 0.75, 10e6
T2_RATIO = 0.90
T4_RSS_KIB = 64 * 1024

# What each configuration sends; --scale multiplies every count. Batch 1024
# sends the same count (and seed) to both, so their primes must agree.
COUNT_BATCH_OURS = {1: 40000, 16: 500000, 128: 2500000, 1024: 20000000, 4096: 20000000}
COUNT_BATCH_BARE = {1: 1500000, 16: 12000000, 128: 15000000, 1024: 20000000, 4096: 30000000}
COUNT_REQREP = 40000            # batch 1, one source, one request at a time
ACK_PAIRS = 2                   # (2): bare/ours pairs per repeat (the noisiest figure)
COUNT_SOURCES = 24000           # batch 1, split over 1, 2, 4 sources
COUNT_RSS_EACH = 600000         # 16 sources, --pipeline 4, batch 1024
SOURCE_PIPELINE = 8             # requests each source keeps outstanding (sweeps)


# ---------------------------------------------------------------------------
# Processes

class Proc:
    """One started executable in its own process group; its output lines."""

    running = []

    def __init__(self, name, args):
        self.name = name
        self.args = [str(arg) for arg in args]
        self.lines = []
        self.status = None
        self.changed = threading.Condition()
        self.popen = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        Proc.running.append(self)
        self.readers = [threading.Thread(target=self._read, args=(stream,), daemon=True)
                        for stream in (self.popen.stdout, self.popen.stderr)]
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

    def exited(self):
        """True once the process has ended (its status in self.status).
        Leaves it a zombie (not reaped), so that its CPU times stay readable
        in /proc until stop()."""
        if self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        if info is not None:
            self.status = info.si_status
        return info is not None

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


def cpu_seconds(pid):
    """User + system CPU seconds used by pid so far, or None."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_usage(run, procs, cpu0, t0, end):
    """Adds CPU use per role (cores busy, 1.0 = one core) over [t0, end]."""
    seconds = (end or time.monotonic()) - t0
    if seconds <= 0:
        return
    roles = {}
    for proc in procs:
        now = cpu_seconds(proc.pid)
        if now is None:
            continue
        role = proc.name.replace("bare-", "")
        roles[role] = roles.get(role, 0) + (now - (cpu0.get(proc.pid) or 0)) / seconds
    run["cpu"] = roles
    run["broker_cpu"] = roles.get("broker")
    run["total_cpu"] = sum(roles.values())


class Bench:
    def __init__(self, options):
        self.options = options
        self.build = options.build
        self.started = time.monotonic()
        self.log = []               # every run, as a dict, in order

    def exe(self, kind):
        if kind in ("bare", "primality"):
            return os.path.join(self.build, "bench", "playzmq-bench-" + kind)
        return os.path.join(self.build, kind, "playzmq-" + kind)

    def count(self, value):
        return max(1, int(value * self.options.scale))

    def time_left(self):
        return self.options.budget - (time.monotonic() - self.started)

    # --- ours -------------------------------------------------------------

    def start_broker(self, extra=()):
        broker = Proc("broker", [self.exe("broker"),
            "--source-bind", "tcp://127.0.0.1:*", "--publish-bind", "tcp://127.0.0.1:*",
            "--dispatch-bind", "tcp://127.0.0.1:*", "--results-bind", "tcp://127.0.0.1:*",
            "--stats", "0"] + list(extra))
        endpoints = {}
        for match in broker.wait_for(r"broker: (\w+) endpoint bound to (\S+)", 10, 4):
            endpoints[match.group(1)] = match.group(2)
        return broker, endpoints

    def ours(self, batch, workers, sources, count_each, pipeline=1, sink=True,
             label=None, profile=None, broker_args=(), threads=1, publish_hwm=0):
        # publish_hwm 0: no limit on the broker's queue to the measuring sink,
        # as in the bare pipeline; a sink starved of CPU for a moment on two
        # busy cores would otherwise lose verdicts at the default 1000
        # messages (PUB drops rather than waits) and the run would not count.
        if publish_hwm is not None:
            broker_args = tuple(broker_args) + ("--publish-hwm", publish_hwm)
        """One run of the real programs. Returns a dict of figures."""
        total = count_each * sources
        run = {"kind": "ours", "label": label, "batch": batch, "workers": workers,
               "sources": sources, "pipeline": pipeline, "count": total}
        procs = []
        try:
            broker, ep = self.start_broker(broker_args)
            procs.append(broker)
            if sink:
                sink_proc = Proc("sink", [self.exe("sink"), "--connect", ep["publish"],
                                          "--tags", "PC", "--format", "none",
                                          "--count", total,
                                          # As the bare sink: a measuring sink
                                          # starved of CPU queues, never drops.
                                          "--hwm", 0])
                procs.append(sink_proc)
                broker.wait_for(r"sink subscribed to '[PC]'", 10, 2)
            for index in range(workers):
                procs.append(Proc("worker", [self.exe("worker"), "--dispatch", ep["dispatch"],
                                             "--results", ep["results"], "--threads", threads]))
            time.sleep(0.4 if workers else 0.05)    # let workers connect
            perf = profile(broker.pid) if profile else None
            cpu0 = {proc.pid: cpu_seconds(proc.pid) for proc in procs}
            t0 = time.monotonic()
            source_procs = [Proc("source", [
                self.exe("source"), "--connect", ep["source"], "--count", count_each,
                "--batch", batch, "--pipeline", pipeline, "--min", 0, "--max", INT64_MAX,
                "--seed", index + 1]) for index in range(sources)]
            procs += source_procs
            end = self.wait_end(sink_proc if sink else None, source_procs)
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
                m = re.search(r"printed N (\d+), P (\d+), C (\d+)", sink_proc.output())
                run["verdicts"] = int(m.group(2)) + int(m.group(3)) if m else 0
                run["primes"] = int(m.group(2)) if m else None
                if run["verdicts"] != total:
                    problems.append("sink got %d of %d verdicts" % (run["verdicts"], total))
            m = re.search(r"final: accepted (\d+) .* requests (\d+) dispatches (\d+)",
                          broker.output())
            if m and int(m.group(3)):
                run["per_dispatch"] = int(m.group(1)) / int(m.group(3))
            m = re.search(r"final: accepted (\d+) .* results (\d+)", broker.output())
            if problems and m:
                problems.append("broker accepted %s, published %s verdicts"
                                % (m.group(1), m.group(2)))
            if problems:
                run["error"] = "; ".join(problems)
        except RuntimeError as error:
            run["error"] = str(error).splitlines()[0]
        finally:
            for proc in procs:
                proc.stop()
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
            #  Verdicts may trail the last ack by a moment, never by seconds;
            #  a source that failed (rejected requests) ends the wait sooner.
            failed = any(s.status for s in sources)
            if sources_done is not None and time.monotonic() - sources_done > (2 if failed else 10):
                return None
        return None

    # --- bare -------------------------------------------------------------

    def bare_pipeline(self, batch, workers, count, test=True, label=None):
        run = {"kind": "bare" if test else "bare-no-test", "label": label, "batch": batch,
               "workers": workers, "sources": 1, "count": count}
        bare = self.exe("bare")
        procs = []
        try:
            broker = Proc("bare-broker", [bare, "broker"])
            procs.append(broker)
            ep = {m.group(1): m.group(2) for m in
                  broker.wait_for(r"^(source|publish|dispatch|results) (\S+)", 10, 4)}
            sink = Proc("bare-sink", [bare, "sink", "--connect", ep["publish"],
                                      "--count", count])
            procs.append(sink)
            broker.wait_for(r"subscribed to '[PC]'", 10, 2)
            for index in range(workers):
                procs.append(Proc("bare-worker", [bare, "worker", "--dispatch", ep["dispatch"],
                                                  "--results", ep["results"]]
                                  + ([] if test else ["--no-test"])))
            time.sleep(0.4)
            cpu0 = {proc.pid: cpu_seconds(proc.pid) for proc in procs}
            t0 = time.monotonic()
            source = Proc("bare-source", [bare, "source", "--connect", ep["source"],
                                          "--count", count, "--batch", batch, "--seed", 1])
            procs.append(source)
            end = self.wait_end(sink, [source])
            self.finish(run, procs, broker, cpu0, t0, end, count)
            m = re.search(r"(\d+) verdicts \(P (\d+)", sink.output())
            run["verdicts"] = int(m.group(1)) if m else 0
            run["primes"] = int(m.group(2)) if m else None
            if run["verdicts"] < count:
                run["error"] = "; ".join(filter(None, [run.get("error"), "sink got %d of %d "
                                                       "verdicts" % (run["verdicts"], count)]))
        except RuntimeError as error:
            run["error"] = str(error).splitlines()[0]
        finally:
            for proc in procs:
                proc.stop()
        return self.record(run)

    def bare_reqrep(self, count, label=None):
        run = {"kind": "bare-reqrep", "label": label, "batch": 1, "count": count}
        bare = self.exe("bare")
        procs = []
        try:
            rep = Proc("bare-rep", [bare, "rep"])
            procs.append(rep)
            endpoint = rep.wait_for(r"^rep (\S+)", 10)[0].group(1)
            req = Proc("bare-req", [bare, "req", "--connect", endpoint, "--count", count])
            procs.append(req)
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
        except RuntimeError as error:
            run["error"] = str(error).splitlines()[0]
        finally:
            for proc in procs:
                proc.stop()
        return self.record(run)

    def record(self, run):
        self.log.append(run)
        print("  " + describe(run), flush=True)
        return run


def describe(run):
    parts = ["%-13s" % run["kind"], "batch %4d" % run["batch"]]
    if "workers" in run:
        parts.append("workers %d" % run["workers"])
    if run.get("sources"):
        parts.append("sources %2d" % run["sources"])
    if run.get("pipeline"):
        parts.append("pipeline %d" % run["pipeline"])
    if run.get("rate") and not run.get("error"):
        parts.append("%10s numbers/s end to end" % si(run["rate"]))
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
    parser.add_argument("--build", default=os.path.join(ROOT, "build"),
                        help="meson build directory (default: build)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of every configuration; tables show the median "
                             "and [min-max] (default 3)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every count (default 1)")
    parser.add_argument("--budget", type=float, default=900,
                        help="stop starting new runs after this many seconds (default 900)")
    parser.add_argument("--run-timeout", type=float, default=60,
                        help="longest one run may take, in seconds (default 60)")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the perf/callgrind profile of the broker")
    parser.add_argument("--no-doc", action="store_true",
                        help="print only; do not write docs/PERFORMANCE.md and plots")
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs"),
                        help="where PERFORMANCE.md and the plots go (default: docs)")
    options = parser.parse_args()

    command = "python3 bench/pipeline.py" + "".join(
        " " + arg for arg in sys.argv[1:])
    print("Reproduce these figures with: %s   (from the repository root, after "
          "tools/build.sh)" % command, flush=True)
    bench = Bench(options)
    for kind in ("broker", "worker", "source", "sink", "bare"):
        if not os.path.exists(bench.exe(kind)):
            sys.exit("pipeline.py: %s is missing: run tools/build.sh first" % bench.exe(kind))

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)

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

    tmp = tempfile.mkdtemp(prefix="playzmq-bench-")
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
            # The same without coalescing: every message is its own dispatch.
            add("ours-b1-c0", bench.ours(1, 2, 1, bench.count(COUNT_REQREP), 1,
                                         broker_args=("--coalesce-ms", 0)))
            # No workers: nothing is ever reported, so the window must hold
            # every number of the run or the broker stops reading (as it should).
            add("ours-b1-acks", bench.ours(1, 0, 1, bench.count(COUNT_REQREP), 1, sink=False,
                                           broker_args=("--max-dispatches", 10**8,
                                                        "--max-inflight", 10**8)))
            # (3) batch 1, several sources.
            for sources in source_counts[1:]:
                add("ours-s%d" % sources, bench.ours(
                    1, 2, sources, bench.count(COUNT_SOURCES) // sources, 1))
            # (1) and the batch sweep, 2 workers; ours and bare side by side.
            for batch in batches:
                add("ours-k%d" % batch, bench.ours(
                    batch, 2, 1, bench.count(COUNT_BATCH_OURS[batch]), SOURCE_PIPELINE))
                add("bare-k%d" % batch, bench.bare_pipeline(
                    batch, 2, bench.count(COUNT_BATCH_BARE[batch])))
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
            # (4) many sources: the broker's memory.
            # The broker's own defaults here, bounded publish queue included.
            add("ours-rss", bench.ours(1024, 2, 16, bench.count(COUNT_RSS_EACH), 4,
                                       publish_hwm=None))
        R["ours-s1"] = R.get("ours-b1", [])
        for workers in workers_sweep:
            if workers == 2:
                R["ours-w2"], R["bare-w2"] = R.get("ours-k1024", []), R.get("bare-k1024", [])
        if not options.no_profile and bench.time_left() > 60:
            profile_md = profile_broker(bench, tmp)
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
    rss_all = [run["broker_hwm_kib"] for runs in R.values() for run in runs
               if run.get("kind") == "ours" and run.get("broker_hwm_kib")]
    t4 = g("ours-rss", "broker_hwm_kib")
    s_rates = {s: g("ours-s%d" % s) for s in source_counts}
    grows = all(med(s_rates[b]) and med(s_rates[a]) and med(s_rates[b]) > med(s_rates[a])
                for a, b in zip(source_counts, source_counts[1:]))
    t3_cpu = {s: g("ours-s%d" % s, "broker_cpu") for s in source_counts}

    targets = [
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
    ]

    def row(cells):
        return "| " + " | ".join(str(c) for c in cells) + " |"

    def table(header, rows):
        return "\n".join([row(header), row(["---"] * len(header))] + [row(r) for r in rows])

    mib = lambda v: "%.1f" % (v / 1024)
    t_targets = table(["target", "goal", "measured: median [min-max]", "verdict"], targets)
    pct = lambda v: "%.0f%%" % (100 * v)
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
    text = "\n\n".join([
        "## Targets\n\n" + t_targets,
        "## (1) Batches of 1024, 2 workers, random values below 2^63\n\n" + t1,
        "## (2) --batch 1, one source: the ack path\n\n" + t2,
        "## (3) --batch 1, sources in parallel\n\n" + t3,
        "## (4) The broker's memory under many sources\n\n" + t4t,
        "## Sweep: numbers per message (2 workers, one source --pipeline %d)\n\n"
        % SOURCE_PIPELINE + tb,
        "## Sweep: workers (batch 1024, one source --pipeline %d)\n\n" % SOURCE_PIPELINE + tw,
    ] + (["## Runs that failed\n\n" + "\n".join("- " + e for e in errors)] if errors else []))
    runs_text = "\n".join(describe(run) for runs in R.values() for run in runs
                          if not run.get("label"))
    return {"text": text, "batch_rows": batch_rows, "worker_rows": worker_rows,
            "runs": runs_text}


def write_doc(options, report, machine, command, date, plots, primality, profile_md):
    path = os.path.join(options.docs, "PERFORMANCE.md")
    hand = ("## Where the time goes\n\n(Not written yet: read the profile above.)\n")
    if os.path.exists(path):
        with open(path) as old:
            text = old.read()
        if HAND_BEGIN in text and HAND_END in text:
            hand = text.split(HAND_BEGIN, 1)[1].split(HAND_END, 1)[0].strip("\n") + "\n"
    parts = [
        "# Performance\n",
        "Generated by `bench/pipeline.py` on %s, except the section between the "
        "hand-written markers, which the script keeps. Every figure below comes from "
        "that one run: rerun the command to get yours.\n" % date,
        "```sh\ntools/build.sh\n%s\n```\n" % command,
        "## Machine\n\n"
        "| | |\n|---|---|\n"
        "| CPU | %(cpu)s |\n| cores | %(cores)d |\n| OS | %(os)s |\n"
        "| kernel | Linux %(kernel)s |\n| ZeroMQ | %(versions)s |\n"
        "| load average at the start | %(load)s (the machine is shared: figures are "
        "noisy, hence ratios of runs made side by side) |\n" % machine,
        "## How it is measured\n\n"
        "- Every configuration runs %d times (the batch-1 ack path, the noisiest figure, "
        "%d times); ours and the bare baseline alternate, and each "
        "ratio is taken between the two runs made next to each other. Tables show the "
        "median and, in brackets, the smallest and largest of the repeats.\n"
        "- Every process is separate and talks over tcp on 127.0.0.1 (ports chosen by the "
        "kernel). Sources send uniformly random values below 2^63 (`--min 0 --max "
        "9223372036854775807`, splitmix64, seeds 1, 2, ...).\n"
        "- *numbers/s end to end*: the count divided by the time from starting the "
        "source(s) to the sink's exit after its last verdict (the sink counts P and C "
        "records and exits at the expected count, so every verdict arrived). *source "
        "acked/s* is what the source itself prints (first send to last ack).\n"
        "- PlayØMQ: `playzmq-broker` with its defaults (`--coalesce-ms 10`, window "
        "`--max-inflight` 1,048,576 numbers), "
        "N `playzmq-worker --threads 1` processes, `playzmq-sink --tags PC --format none`, "
        "sources `--pipeline %d` unless stated. *numbers per dispatch* is the broker's "
        "count of numbers over the dispatch messages it made (source messages merge "
        "while they wait for a worker).\n"
        "- The bare pipeline (`bench/bare.c`, czmq zsock API) has PlayØMQ's shape: source "
        "PUSH → broker PULL, PUB a copy (`zmq_msg_copy`) and PUSH on → workers PULL, test "
        "every number with **the same `pz_prime_check` from worker/prime.h**, PUSH a P and "
        "a C message → broker PULL → PUB → sink SUB (P, C) counting. No acks, ids, leases, "
        "window or validation; its PUB queue is unbounded so no verdict is dropped. "
        "*bare, no primality test* is the same with the test replaced by the lowest bit "
        "of the number: the messaging ceiling. The bare REQ→REP is one REQ and one REP "
        "process exchanging 9-byte messages.\n"
        "- Broker VmHWM is read from /proc/<pid>/status just before the broker is "
        "stopped. *CPU* is each role's user+system time over the measured interval, in "
        "%% of one core (summed over its processes; 200 = both cores).\n"
        "- Batch 1024 sends the same count with the same seed through both pipelines, so "
        "*primes seen* must be equal: the same numbers got the same verdicts.\n"
        % (options.repeat, options.repeat * ACK_PAIRS, SOURCE_PIPELINE),
        report["text"] + "\n",
    ]
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
    parts.append(HAND_BEGIN + "\n" + hand + HAND_END + "\n")
    parts.append("## Every run\n\n```\n%s\n```\n" % report["runs"])
    with open(path, "w") as out:
        out.write("\n".join(parts))


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        Proc.stop_all()
