"""The README's "Running on several machines" recipe, step by step, with
the systemd units as written, on network hosts.

No systemd as PID 1 here, so this test does what systemd would with the
units in deploy/systemd/: it reads each unit's LoadCredential=,
Environment=, EnvironmentFile=, ExecStart= and ExecReload=, copies the
credentials into a private directory (%d), and runs the command line as
written, with three paths moved into the host's scratch directory:
/usr/local/bin (the built programs), /etc/playzmq and /var/lib/playzmq. The
hosts are network namespaces (tests/netns.py): alpha (the broker and a
worker), beta (a worker machine added later), client (a source and a sink,
as a person at a laptop).

The recipe's steps, as the README gives them:
- on alpha: playzmq-keygen broker, and a worker key, into
  /etc/playzmq/keys; alpha's worker.cert into /etc/playzmq/allow/alpha.cert;
- every file the units name is one keygen wrote there (secret ones 0600);
- the client makes its source and sink keys itself; only their public
  certificates go to alpha's allow directory; the broker's public
  certificate comes back; `systemctl reload` (the unit's ExecReload=);
- adding beta: its own worker key made on beta, broker.cert copied to it,
  its worker.cert copied to alpha's allow/beta.cert, reload: beta's worker
  gets work;
- revoking beta: its file removed from the allow directory, reload: within
  a second the broker refuses beta's address, beta gets no more work, and
  every number the client's source had acknowledged has exactly one right
  verdict at the client's sink (lost 0, duplicated 0, unexpected 0, wrong 0);
- a plaintext source on the client is refused.
"""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time

import harness
import netns
from harness import Cluster, check, read_numbers, read_records

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
UNITS = os.path.join(ROOT, "deploy", "systemd")
README = os.path.join(ROOT, "README.md")


def unit(name):
    """{key: [values]} of a unit file's settings, continuation lines joined."""
    with open(os.path.join(UNITS, name)) as handle:
        text = re.sub(r"\\\n\s*", " ", handle.read())
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


class Host:
    """One machine: its network namespace and its file system's scratch root."""

    def __init__(self, net, c, name):
        net.add_host(name)
        self.name = name
        self.prefix = net.exec_prefix(name)
        self.address = net.hosts[name].address
        self.root = c.path(name)
        os.makedirs(self.root)

    def path(self, path):
        """Where an absolute path of this machine is here."""
        for moved in ("/etc/playzmq", "/var/lib/playzmq"):
            if path == moved or path.startswith(moved + "/"):
                return self.root + path
        match = re.fullmatch(r"/usr/local/bin/playzmq-(\w+)", path)
        if match:
            return harness.binary(match.group(1))
        return path

    def mkdir(self, directory):
        """install -d DIRECTORY (or mkdir -p), on this machine."""
        os.makedirs(self.path(directory), exist_ok=True)

    def keygen(self, name, directory, role=None):
        """playzmq-keygen NAME [--role ROLE] --dir DIRECTORY, on this machine."""
        argv = [harness.binary("keygen"), name, "--dir", self.path(directory)]
        argv += ["--role", role] if role else []
        subprocess.run(argv, check=True, capture_output=True, timeout=10)

    def install(self, source_host, source, target):
        """scp source_host:source here as target (a public certificate)."""
        os.makedirs(os.path.dirname(self.path(target)), exist_ok=True)
        shutil.copyfile(source_host.path(source), self.path(target))
        os.chmod(self.path(target), 0o644)


class Service:
    """What systemd does with a unit: credentials, environment, ExecStart,
    ExecReload."""

    def __init__(self, c, host, name, env_file):
        self.settings = unit(name)
        self.host = host
        self.c = c
        self.name = "%s-%s" % (host.name, name.split("@")[0].split(".")[0])
        self.env_file = env_file
        self.proc = None

    def named_paths(self):
        """Every /etc/playzmq path the unit names: (path, is a credential)."""
        found = []
        for value in self.settings.get("LoadCredential", []):
            found.append((value.split(":", 1)[1], True))
        for value in self.settings["ExecStart"]:
            found += [(word, False) for word in value.split()
                      if word.startswith("/etc/playzmq/")]
        return found

    def start(self, stdout=None):
        credentials = self.c.path(self.name + ".credentials")
        os.makedirs(credentials)
        for value in self.settings.get("LoadCredential", []):
            ident, source = value.split(":", 1)
            shutil.copyfile(self.host.path(source), os.path.join(credentials, ident))
            os.chmod(os.path.join(credentials, ident), 0o400)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for value in self.settings.get("Environment", []):
            env.update(item.split("=", 1) for item in value.split())
        assert self.settings["EnvironmentFile"] == ["/etc/playzmq/playzmq.env"]
        env.update(self.env_file)
        argv = self.settings["ExecStart"][0].replace("%d", credentials).split()
        argv = [self.host.path(word) for word in argv]
        kind = re.fullmatch(r".*/playzmq-(\w+)", argv[0]).group(1)
        os.makedirs(self.host.path("/var/lib/playzmq"), exist_ok=True)
        self.proc = self.c.start(kind, *argv[1:], name=self.name, env=env, stdout=stdout,
                                 prefix=self.host.prefix)
        return self.proc

    def reload(self):
        """ExecReload=, $MAINPID being the program's pid."""
        argv = self.settings["ExecReload"][0].replace("$MAINPID", str(self.proc.pid)).split()
        subprocess.run(argv, check=True, timeout=10)


def worker_numbers(path):
    """{worker name: numbers} from the broker's JSON statistics (the last)."""
    names = {}
    if not os.path.exists(path):
        return names
    with open(path, errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("type") == "stats":
                for worker in record.get("workers") or []:
                    names[str(worker.get("name"))] = int(worker.get("numbers") or 0)
    return names


def test_readme_names_the_units_paths():
    """The recipe in the README and the units speak of the same files."""
    with open(README) as handle:
        text = handle.read()
    section = text[text.index("## Running on several machines"):]
    section = section[:section.index("\n## ", 3)]
    for name in ("playzmq-broker.service", "playzmq-worker@.service"):
        settings = unit(name)
        for value in settings.get("LoadCredential", []) + settings["ExecStart"]:
            for path in re.findall(r"/etc/playzmq/[\w./]+", value):
                directory, _, base = path.rpartition("/")
                # The README makes the file (keygen NAME --dir DIR) or names it.
                made = re.search(r"playzmq-keygen %s\b.*--dir %s\b" % (
                    re.escape(base.split(".")[0]), re.escape(directory)), section)
                assert path in section or made, "%s names %s; the README does not" % (
                    name, path)
    assert unit("playzmq-broker.service")["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "systemctl reload playzmq-broker" in section


def test_recipe_add_and_revoke_a_worker_machine():
    with netns.Network() as net, Cluster("recipe") as c:
        alpha, beta, client = (Host(net, c, name) for name in ("alpha", "beta", "client"))

        # On alpha: its own worker key (step 1), the broker's key (step 2).
        alpha.mkdir("/etc/playzmq/keys")
        alpha.keygen("worker", "/etc/playzmq/keys", role="worker")
        alpha.keygen("broker", "/etc/playzmq/keys")
        alpha.install(alpha, "/etc/playzmq/keys/worker.cert", "/etc/playzmq/allow/alpha.cert")
        env = {"PLAYZMQ_BROKER": "alpha", "PLAYZMQ_STATS": "1",
               "PLAYZMQ_STATS_FORMAT": "json", "PLAYZMQ_LEASE_MS": "1000"}
        broker = Service(c, alpha, "playzmq-broker.service", env)
        alpha_worker = Service(c, alpha, "playzmq-worker@.service",
                               dict(env, PLAYZMQ_NAME="alpha"))
        beta_worker = Service(c, beta, "playzmq-worker@.service",
                              dict(env, PLAYZMQ_NAME="beta"))
        # Every file the units name on alpha is one keygen wrote; secrets 0600.
        for service in (broker, alpha_worker):
            for path, credential in service.named_paths():
                here = alpha.path(path)
                assert os.path.exists(here), "%s names %s: not made by the recipe" % (
                    service.name, path)
                if credential:
                    assert stat.S_IMODE(os.stat(here).st_mode) == 0o600, path
                    assert path.endswith(".cert_secret"), path
        stats = c.path("broker.json")
        broker.start(stdout=stats).wait_for_log(r"zap: 1 keys allowed")
        alpha_worker.start()

        # The client: its own keys, their public certificates to alpha,
        # alpha's public one back; reload.
        client.mkdir("/etc/playzmq/keys")
        client.keygen("laptop-source", "/etc/playzmq/keys", role="source")
        client.keygen("laptop-sink", "/etc/playzmq/keys", role="sink")
        for name in ("laptop-source", "laptop-sink"):
            alpha.install(client, "/etc/playzmq/keys/%s.cert" % name,
                          "/etc/playzmq/allow/%s.cert" % name)
        client.install(alpha, "/etc/playzmq/keys/broker.cert", "/etc/playzmq/keys/broker.cert")
        broker.reload()
        broker.proc.wait_for_log(r"zap: reloaded: 3 keys allowed")

        def keys(name):
            return ["--curve-cert", client.path("/etc/playzmq/keys/%s.cert_secret" % name),
                    "--curve-server", client.path("/etc/playzmq/keys/broker.cert")]
        verdicts = c.path("verdicts.txt")
        sink = c.start("sink", "--broker", "alpha", "--tags", "PC", *keys("laptop-sink"),
                       stdout=verdicts, prefix=client.prefix)
        broker.proc.wait_for_log(r"sink subscribed", count=2)

        # Adding beta: its key made there, broker.cert to it, its public
        # certificate to alpha, reload.
        beta.mkdir("/etc/playzmq/keys")
        beta.keygen("worker", "/etc/playzmq/keys", role="worker")
        beta.install(alpha, "/etc/playzmq/keys/broker.cert", "/etc/playzmq/keys/broker.cert")
        alpha.install(beta, "/etc/playzmq/keys/worker.cert", "/etc/playzmq/allow/beta.cert")
        for path, _ in beta_worker.named_paths():
            assert os.path.exists(beta.path(path)), path
        broker.reload()
        broker.proc.wait_for_log(r"zap: reloaded: 4 keys allowed")
        beta_worker.start()

        acked = c.path("acked.txt")
        source = c.start("source", "--broker", "alpha", "--count", 100000, "--rate", 400,
                         "--batch", 10, "--acked", acked, *keys("laptop-source"),
                         prefix=client.prefix)

        def both_worked():
            found = worker_numbers(stats)
            alpha_n = sum(n for w, n in found.items() if w.startswith("alpha"))
            beta_n = sum(n for w, n in found.items() if w.startswith("beta"))
            return (alpha_n, beta_n) if alpha_n > 0 and beta_n > 0 else None
        worked, deadline = None, time.monotonic() + 20
        while not worked and time.monotonic() < deadline:
            worked = both_worked()
            time.sleep(0.2)
        assert worked, "beta got no work: %s\n%s" % (worker_numbers(stats), broker.proc.log())

        # Revoking beta: its file out of the allow directory, reload.
        os.remove(alpha.path("/etc/playzmq/allow/beta.cert"))
        revoked = time.monotonic()
        broker.reload()
        broker.proc.wait_for_log(r"zap: refused %s on the (dispatch|results) endpoint"
                                 % re.escape(beta.address), timeout=5)
        cut_after = time.monotonic() - revoked
        assert cut_after < 1.0, "beta refused %.2f s after the reload" % cut_after
        time.sleep(1.5)
        beta_then = sum(n for w, n in worker_numbers(stats).items() if w.startswith("beta"))
        time.sleep(3)
        beta_end = sum(n for w, n in worker_numbers(stats).items() if w.startswith("beta"))
        assert beta_end == beta_then, "revoked beta still works: %d -> %d" % (
            beta_then, beta_end)
        assert source.alive(), source.log()
        source.stop(timeout=5)

        # A plaintext source on the client is refused. It keeps trying for
        # 3 s (libzmq reconnects every 100 ms): on a loaded machine one
        # short attempt may end before its handshake got far enough for
        # the broker to tell what it was (once in CI, with 0.6 s).
        plain = c.start("source", "--broker", "alpha", "--count", 10, "--wait", 0,
                        "--retries", 2, "--timeout", 1000, prefix=client.prefix)
        assert plain.wait(30) == 1 and re.search(r"acked 0 ", plain.log()), plain.log()
        broker.proc.wait_for_log(r"zap: refused %s on the source endpoint: .*not CURVE"
                                 % re.escape(client.address), timeout=15)

        numbers = read_numbers(acked)
        assert len(numbers) > 500, source.log()

        def verdict():
            return check(numbers, read_records(verdicts))
        deadline = time.monotonic() + 20          # leases of 1 s
        while verdict().lost and time.monotonic() < deadline:
            time.sleep(0.2)
        for proc in (sink, beta_worker.proc, alpha_worker.proc, broker.proc):
            proc.stop(timeout=5)
        result = verdict()
        harness.report("recipe", result, alpha=worker_numbers(stats).get("alpha"),
                       beta_before_revoke=beta_then, cut_after="%.2f" % cut_after)
        # The source was stopped mid-run: requests the broker had accepted
        # but whose acks it never read (at most its window: --batch 10 x
        # --pipeline 512, its default) have verdicts that are not in its
        # --acked file, and may repeat a random number it did record.
        in_flight = 10 * 512
        assert result.lost == result.wrong == 0, result
        assert result.unexpected + result.duplicated <= in_flight, result


if __name__ == "__main__":
    harness.run_tests(globals())
