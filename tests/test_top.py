"""playzmq-top as a person uses it: in a terminal (tmux, 120x40) next to a
running cluster, reading what is on the screen. Two named workers share a
steady source: both rows show a rate, the throughput is above 0, the
endpoint is named; one worker stops, and its row's rate drops to 0 while
its last-seen grows; the broker stops and comes back, and the screen
says so and finds it again; Ctrl-C ends it and gives the terminal back. Then
--once (the container health check) against a broker and against a port
where nothing listens, and --once --json."""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time

import harness
from harness import Cluster, binary

TOP = binary("top")


def free_port():
    """A port nothing listens on (the kernel just handed it out)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_top(*args, timeout=15):
    return subprocess.run([TOP] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout)


def number(text):
    return int(text.replace(",", ""))


def worker_row(screen, name):
    """(rate, numbers, last seen in seconds) of a worker's row, or None."""
    match = re.search(r"^%s\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+"
                      r"([\d.]+) (s|min|h|d)\b" % re.escape(name), screen, re.M)
    if not match:
        return None
    seen = float(match.group(5)) * {"s": 1, "min": 60, "h": 3600, "d": 86400}[match.group(6)]
    return number(match.group(1)), number(match.group(2)), seen


def throughput(screen):
    match = re.search(r"^throughput ([\d,]+) verdicts/s", screen, re.M)
    return number(match.group(1)) if match else None


class Tmux:
    """One detached tmux session on a server of its own (its own socket),
    so that the user's tmux is never touched."""

    def __init__(self, name, command, log):
        self.socket = name
        self.name = name
        # stderr to a file, so log lines never land on the screen under
        # test; and a line when the program ends, to tell a crash.
        shell = "%s 2>>%s; echo playzmq-top exited with status $?; sleep 600" % (
            command, shlex.quote(log))
        result = self.tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "40", shell)
        assert result.returncode == 0, result

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket] + list(args),
                              capture_output=True, text=True, timeout=10)

    def capture(self):
        return self.tmux("capture-pane", "-p", "-t", self.name).stdout

    def wait_for(self, what, predicate, timeout):
        """Captures until predicate(screen) holds; returns the screen, or
        raises AssertionError with what and the last screen."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError("no %s on the screen after %.0f s:\n%s"
                                     % (what, timeout, screen))
            time.sleep(0.2)

    def close(self):
        self.tmux("kill-session", "-t", self.name)
        self.tmux("kill-server")
        socket_path = os.path.join(os.environ.get("TMUX_TMPDIR") or "/tmp",
                                   "tmux-%d" % os.getuid(), self.socket)
        try:
            os.unlink(socket_path)
        except OSError:
            pass


def test_screen_shows_the_work_spread_and_a_stopped_worker():
    if not shutil.which("tmux"):
        raise harness.Skip("tmux is not installed (apt-get install tmux; "
                           "tools/packages-test.txt lists it)")
    with Cluster("top") as c:
        # Ports of our own, so that the broker can come back on them.
        broker, ep = c.start_broker("--stats", 0, endpoints=harness.private_endpoints(),
                                    name="broker")
        workers = {}
        for name in ("alpha", "beta"):
            workers[name] = c.start("worker", "--dispatch", ep["dispatch"],
                                    "--results", ep["results"], "--threads", 1,
                                    "--name", name)
        c.start("source", "--connect", ep["source"], "--rate", 20000,
                "--count", 400000, "--batch", 100)
        log = c.path("top.log")
        tmux = Tmux("pztop-%d" % os.getpid(),
                    "%s --history %s" % (shlex.quote(TOP), ep["history"]), log)
        try:
            time.sleep(3)

            def both_busy(screen):
                rows = [worker_row(screen, name) for name in workers]
                return all(row and row[0] > 0 for row in rows) and (throughput(screen) or 0) > 0

            screen = tmux.wait_for("two busy workers", both_busy, 10)
            print(screen, flush=True)
            assert "playzmq-top  %s  broker up" % ep["history"] in screen, screen
            assert "2 workers, 2 reporting" in screen, screen
            assert re.search(r"^ +[\d,]+ \|.*#.*\|$", screen, re.M), "no chart:\n" + screen
            assert re.search(r"^in flight [\d,]+ +accepted [\d,]+ +results [\d,]+ +"
                             r"redispatched 0 +duplicates 0", screen, re.M), screen
            assert "journal off   seq " in screen, screen
            assert "not answering" not in screen, screen
            for name in workers:
                rate, numbers, seen = worker_row(screen, name)
                assert rate > 0 and numbers > 0 and seen < 5, (name, screen)

            # One worker stops: its rate drops to 0, its last-seen grows.
            workers["alpha"].stop()
            screen = tmux.wait_for(
                "alpha at rate 0", lambda s: (worker_row(s, "alpha") or (1,))[0] == 0
                and (worker_row(s, "beta") or (0,))[0] > 0, 6)
            first_seen = worker_row(screen, "alpha")[2]
            time.sleep(2.5)
            screen = tmux.wait_for(
                "alpha's last-seen growing",
                lambda s: worker_row(s, "alpha") and worker_row(s, "alpha")[2] >= first_seen + 1.5,
                5)
            print(screen, flush=True)
            alpha, beta = worker_row(screen, "alpha"), worker_row(screen, "beta")
            assert alpha[0] == 0 and beta[0] > 0, screen
            # Silent for 5 s: no longer counted as reporting.
            screen = tmux.wait_for("1 reporting", lambda s: "2 workers, 1 reporting" in s, 6)
            assert re.search(r"^beta .* 100% #{10}$", screen, re.M), screen

            # The broker gone: said so, naming the endpoint, the last answer
            # kept; back: found again by itself.
            broker.stop()
            screen = tmux.wait_for("broker not answering", lambda s: (
                "broker not answering (%s): no reply within 2000 ms" % ep["history"]) in s, 8)
            print(screen, flush=True)
            assert "the numbers below are" in screen and worker_row(screen, "beta"), screen
            broker, ep = c.start_broker("--stats", 0, endpoints=ep, name="broker")
            screen = tmux.wait_for("the broker again", lambda s: "not answering" not in s
                                   and "broker up 0:00:0" in s, 10)

            # Ctrl-C ends it and gives the terminal back.
            tmux.tmux("send-keys", "-t", tmux.name, "C-c")
            screen = tmux.wait_for("its exit", lambda s: "exited with status" in s, 5)
            assert "playzmq-top exited with status 0" in screen, screen
            assert "WORKER" not in screen, "the screen was not restored:\n" + screen
        finally:
            tmux.close()
        with open(log) as handle:
            errors = handle.read()
        assert errors == "", errors


def test_once_json_and_the_health_check():
    with Cluster("top-once") as c:
        broker, ep = c.start_broker("--stats", 0)
        c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"],
                "--threads", 1, "--name", "gamma")
        c.start("source", "--connect", ep["source"], "--count", 1000, "--batch", 100)
        deadline = time.monotonic() + 20
        while True:
            once = run_top("--once", "--history", ep["history"])
            assert once.returncode == 0, once
            if worker_row(once.stdout, "gamma"):
                break
            assert time.monotonic() < deadline, once.stdout
            time.sleep(0.3)
        print(once.stdout, flush=True)
        assert once.stdout.startswith("playzmq-top  %s  broker up" % ep["history"]), once.stdout
        assert re.search(r"^throughput [\d,]+ verdicts/s$", once.stdout, re.M), once.stdout
        assert "+---" not in once.stdout, "one snapshot has no chart"
        assert "\033" not in once.stdout, "--once prints no escapes"

        raw = run_top("--once", "--json", "--history", ep["history"])
        assert raw.returncode == 0, raw
        stats = json.loads(raw.stdout)
        assert stats["type"] == "stats" and stats["journal"] is False, stats
        assert [w["name"] for w in stats["workers"]] == ["gamma"], stats

        # The environment, as in a container.
        env = dict(os.environ, PLAYZMQ_HISTORY=ep["history"], PLAYZMQ_ONCE="1")
        health = subprocess.run([TOP], capture_output=True, text=True, timeout=10, env=env)
        assert health.returncode == 0, health

        # The broker gone: 1, within the timeout, naming the endpoint.
        broker.stop()
        started = time.monotonic()
        gone = run_top("--once", "--timeout", 500, "--history", ep["history"])
        assert gone.returncode == 1, gone
        assert time.monotonic() - started < 3, "took too long"
        assert "broker not answering (%s)" % ep["history"] in gone.stderr, gone.stderr


def test_once_without_a_broker_fails_within_its_timeout():
    endpoint = "tcp://127.0.0.1:%d" % free_port()
    for args, timeout in ((["--timeout", 700], 0.7), ([], 2.0)):
        started = time.monotonic()
        result = run_top("--once", "--history", endpoint, *args)
        took = time.monotonic() - started
        assert result.returncode == 1, result
        assert timeout <= took < timeout + 1.5, (args, took)
        assert result.stdout == "", result.stdout
        assert result.stderr.strip() == ("playzmq-top: broker not answering (%s): no reply "
                                         "within %d ms" % (endpoint, timeout * 1000)), result.stderr
        raw = run_top("--once", "--json", "--timeout", 300, "--history", endpoint)
        assert raw.returncode == 1 and raw.stdout == "", raw


def test_flags():
    result = run_top("--help")
    assert result.returncode == 0, result
    for word in ("--broker", "--history", "--interval", "--once", "--json", "--timeout",
                 "(default: localhost)", "(default: 1000)", "(default: 2000)",
                 "PLAYZMQ_HISTORY"):
        assert word in result.stdout, "--help lacks %s:\n%s" % (word, result.stdout)
    version = run_top("--version")
    assert version.returncode == 0 and version.stdout.startswith("playzmq-top "), version
    for args, words in ((["--json"], "--json goes with --once"),
                        (["--interval", "0"], "out of range"),
                        (["--history", "not an endpoint", "--once"], None)):
        result = run_top(*args)
        if words:
            assert result.returncode == 2, (args, result)
            assert words in result.stderr and result.stderr.startswith("playzmq-top: "), result
        else:
            assert result.returncode == 1, (args, result)
            assert "not an endpoint" in result.stderr, result


if __name__ == "__main__":
    harness.run_tests(globals())
