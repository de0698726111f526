"""The four programs as a user meets them: --help, --version, bad flags,
environment variables, endpoints that cannot be bound or reached, input
files with bad lines, output formats. Exit codes: 0 fine, 1 an endpoint or
peer problem, 2 a bad flag or value."""
import json
import os
import re
import signal
import socket
import subprocess
import time

import harness
from harness import Cluster, binary, read_numbers, sink_endpoints

PROGRAMS = ("broker", "worker", "source", "sink")


def run(kind, *args, env=None, timeout=10, stdin=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([binary(kind)] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, input=stdin)


def free_port():
    """A port nothing listens on (the kernel just handed it out)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_lists_every_option_with_default_and_version():
    expected = {
        "broker": ["--source-bind", "--publish-bind", "--dispatch-bind", "--results-bind",
                   "--max-inflight", "--lease-ms", "--drain-ms", "--stats", "(default: tcp://*:5555)"],
        "worker": ["--dispatch", "--results", "--broker", "--threads", "--timeout", "--retries"],
        "source": ["--connect", "--broker", "--count", "--min", "--max", "--seed", "--input",
                   "--batch", "--rate", "--timeout", "--retries", "--pipeline", "(default: 1)"],
        "sink": ["--connect", "--broker", "--tags", "--format", "--count", "(default: PR)"],
    }
    for kind in PROGRAMS:
        result = run(kind, "--help")
        assert result.returncode == 0, result
        for word in expected[kind] + ["--help", "--version", "--verbose", "PLAYZMQ_"]:
            assert word in result.stdout, "%s --help lacks %s:\n%s" % (kind, word, result.stdout)
        version = run(kind, "--version")
        assert version.returncode == 0 and version.stdout.startswith("playzmq-" + kind + " ")


def test_bad_flags_exit_2_with_one_clear_line():
    cases = [
        ("broker", ["--lease-ms", "soon"], "is not a whole number"),
        ("broker", ["--max-inflight", "0"], "out of range"),
        ("broker", ["--colour"], "unknown option"),
        ("worker", ["--threads", "-3"], "out of range"),
        ("source", ["--batch", "4097"], "out of range"),
        ("source", ["--count", "12abc"], "is not a whole number"),
        ("source", ["--min", "10", "--max", "5"], "above --max"),
        ("source", ["--timeout"], "needs a value"),
        ("sink", ["--tags", "PZ"], "not a set of tags"),
        ("sink", ["--format", "xml"], "not text, json, csv or none"),
        ("sink", ["extra"], "unexpected argument"),
    ]
    for kind, args, words in cases:
        result = run(kind, *args)
        assert result.returncode == 2, (kind, args, result)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (kind, args, result.stderr)
        assert lines[0].startswith("playzmq-%s: " % kind), lines


def test_environment_sets_options_and_flags_win():
    bad = run("sink", env={"PLAYZMQ_TAGS": "Q"})
    assert bad.returncode == 2 and "'Q'" in bad.stderr
    bad = run("broker", env={"PLAYZMQ_LEASE_MS": "x"})
    assert bad.returncode == 2 and "PLAYZMQ_LEASE_MS" in bad.stderr
    # The flag wins over the environment.
    fine = run("sink", "--tags", "N", "--count", "0", "--help", env={"PLAYZMQ_TAGS": "Q"})
    assert fine.returncode == 0


def test_port_in_use_exits_1_naming_the_endpoint():
    with Cluster("port") as c:
        broker, ep = c.start_broker()
        result = run("broker", "--source-bind", ep["source"],
                     "--publish-bind", "tcp://127.0.0.1:*", "--dispatch-bind",
                     "tcp://127.0.0.1:*", "--results-bind", "tcp://127.0.0.1:*")
        assert result.returncode == 1, result
        assert ep["source"] in result.stderr and "in use" in result.stderr, result.stderr
        assert broker.alive()


def test_source_without_broker_gives_up_naming_the_endpoint():
    endpoint = "tcp://127.0.0.1:%d" % free_port()
    started = time.monotonic()
    # --wait 0: give up after the retries even before the broker ever
    # answered (by default a broker still starting is waited for 60 s).
    result = run("source", "--connect", endpoint, "--count", 5, "--timeout", 200,
                 "--retries", 2, "--wait", 0)
    assert result.returncode == 1, result
    assert "no ack from %s after 3 attempts" % endpoint in result.stderr, result.stderr
    assert time.monotonic() - started < 5


def test_source_waits_for_a_broker_that_is_still_starting():
    """Started before its broker, a source waits (saying so) and then sends
    everything once the broker is up, instead of giving up."""
    with Cluster("wait-for-broker") as c:
        ep = harness.private_endpoints()
        acked = c.path("acked.txt")
        source = c.start("source", "--connect", ep["source"], "--count", 50,
                         "--timeout", 300, "--retries", 1, "--acked", acked)
        source.wait_for_log(r"waiting for the broker at %s" % re.escape(ep["source"]),
                            timeout=10)
        time.sleep(1)                       # well past 1 + retries timeouts
        assert source.alive(), source.log()
        broker, _ = c.start_broker("--stats", 0, endpoints=ep)
        assert source.wait(20) == 0, source.log()
        assert len(harness.read_numbers(acked)) == 50


def test_worker_gives_up_when_results_endpoint_is_dead():
    with Cluster("giveup") as c:
        broker, ep = c.start_broker()
        dead = "tcp://127.0.0.1:%d" % free_port()
        worker = c.start("worker", "--dispatch", ep["dispatch"], "--results", dead,
                         "--threads", 1, "--timeout", 200, "--retries", 1, "--wait", 0)
        assert harness.rawreq(ep["source"], harness.record_hex("N", 7)) == [("A", 1)]
        assert worker.wait(10) == 1, worker.log()
        assert "giving up: no ack from results endpoint %s" % dead in worker.log()


def test_input_file_reports_bad_lines_and_sends_the_rest():
    with Cluster("input") as c:
        broker, ep = c.start_broker()
        c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"])
        numbers = c.path("numbers.txt")
        with open(numbers, "w") as handle:
            handle.write("17\nabc\n\n  -4 \n9223372036854775807\n9223372036854775808\n"
                         "12 13\n0x10\n100\n")
            # A NUL byte makes a line bad, and a line too long to be a
            # number is one bad line (fuzz/fuzz_source.c found both read
            # wrong: "4" taken, and the long line's end read as line 12).
            handle.write("4\x002\n" + "7" * 200 + "\n8\n")
        acked = c.path("acked.txt")
        result = run("source", "--connect", ep["source"], "--input", numbers,
                     "--batch", 2, "--acked", acked)
        assert result.returncode == 1, result
        for line, text in ((2, "abc"), (6, "9223372036854775808"), (7, "12 13"), (8, "0x10"),
                           (10, "4<NUL>..."), (11, "7" * 127 + "...")):
            assert "line %d: '%s' is not a 64-bit integer" % (line, text) in result.stderr, \
                result.stderr
        assert "line 12:" not in result.stderr, result.stderr
        assert read_numbers(acked) == [17, -4, 9223372036854775807, 100, 8]
        # stdin works the same; a clean file exits 0.
        result = run("source", "--connect", ep["source"], "--input", "-",
                     stdin="5\n6\n7\n")
        assert result.returncode == 0 and "acked 3" in result.stderr, result.stderr


def test_sink_formats_and_count():
    with Cluster("formats") as c:
        broker, ep = c.start_broker()
        c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"])
        outputs = {}
        sinks = []
        for fmt in ("text", "json", "csv"):
            outputs[fmt] = c.path("out.%s" % fmt)
            sinks.append(c.start("sink", *sink_endpoints(ep), "--tags", "NP",
                                 "--format", fmt, "--count", 5, stdout=outputs[fmt]))
        broker.wait_for_log(r"sink subscribed", count=6)
        numbers = c.path("numbers.txt")
        with open(numbers, "w") as handle:
            handle.write("2\n4\n97\n")
        assert run("source", "--connect", ep["source"], "--input", numbers,
                   "--batch", 3).returncode == 0
        for sink in sinks:
            assert sink.wait(10) == 0, sink.log()
            assert "printed N 3, P 2, C 0" in sink.log(), sink.log()
        text = open(outputs["text"]).read().splitlines()
        assert text == ["N 2", "N 4", "N 97", "P 2", "P 97"], text
        rows = [json.loads(line) for line in open(outputs["json"])]
        assert rows[3] == {"tag": "P", "value": 2} and len(rows) == 5
        csv = open(outputs["csv"]).read().splitlines()
        assert csv[0] == "tag,value" and csv[1:] == ["N,2", "N,4", "N,97", "P,2", "P,97"]


def test_largest_batch_goes_through_with_its_id():
    # 4096 numbers and the request id: 4097 records, one over the plain
    # limit, since the leading I record is not counted. The dispatch and
    # the report carry 4096 records behind an id too.
    with Cluster("batch4096") as c:
        broker, ep = c.start_broker()
        c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"])
        out = c.path("verdicts.txt")
        sink = c.start("sink", *sink_endpoints(ep), "--tags", "PC",
                       "--count", 8192, stdout=out)
        broker.wait_for_log(r"sink subscribed", count=2)
        acked = c.path("acked.txt")
        result = run("source", "--connect", ep["source"], "--count", 8192,
                     "--batch", 4096, "--acked", acked, timeout=30)
        assert result.returncode == 0 and "acked 8192" in result.stderr, result.stderr
        assert sink.wait(20) == 0, sink.log()
        verdict = harness.check(read_numbers(acked), harness.read_records(out))
        assert verdict.lost == verdict.wrong == verdict.duplicated == 0, verdict


def test_sink_into_a_closed_pipe_ends_quietly():
    with Cluster("pipe") as c:
        broker, ep = c.start_broker()
        c.start("worker", "--dispatch", ep["dispatch"], "--results", ep["results"])
        pipeline = subprocess.Popen(
            "%s --connect %s --tags N | head -n 2" % (binary("sink"), ep["publish"]),
            shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            broker.wait_for_log(r"sink subscribed")
            source = c.start("source", "--connect", ep["source"], "--count", 50,
                             "--rate", 100)
            out, err = pipeline.communicate(timeout=20)
        finally:
            # Not one of the cluster's processes: ended here if it hangs.
            if pipeline.poll() is None:
                os.killpg(pipeline.pid, signal.SIGKILL)
                pipeline.wait()
        assert pipeline.returncode == 0 and len(out.splitlines()) == 2, (out, err)
        source.wait(20)


if __name__ == "__main__":
    harness.run_tests(globals())
