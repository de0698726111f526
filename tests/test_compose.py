"""The container demo and the systemd units, tested without their engines.

No Docker engine and no systemd as PID 1 here, so:
- docker-compose.yml is validated by `docker-compose config` (Debian's
  docker-compose, or `docker compose` where that works); its journal
  volume, its Swarm settings and docker-compose.override.yml's loopback
  ports are checked as written (tests/test_deploy.py runs them in a real
  engine);
- its services are run for real: each service's command and environment,
  exactly as written, as local processes (the image's playzmq-<kind> is
  build/<kind>/playzmq-<kind>), one network namespace per container with its
  own address, service names resolvable through /etc/netns/<ns>/hosts as
  Compose's DNS would, the worker scaled to 2 and the broker started last;
- every PLAYZMQ_* name the compose file and the example environment file
  set is one some program reads (a misspelt one would be ignored silently);
- the Dockerfile builds with CI's scripts, and its runtime packages provide
  every library the executables load;
- `systemd-analyze verify` checks the units, pointed at the built programs.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import yaml
except ImportError:
    yaml = None
    # Debian's python3-yaml serves /usr/bin/python3, and meson may have found
    # another python3 first on PATH: run this file with Debian's if it helps.
    DEBIAN = "/usr/bin/python3"
    if (not os.environ.get("PZ_COMPOSE_REEXEC") and os.path.exists(DEBIAN)
            and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN)
            and subprocess.run([DEBIAN, "-c", "import yaml"],
                               capture_output=True).returncode == 0):
        os.environ["PZ_COMPOSE_REEXEC"] = "1"
        os.execv(DEBIAN, [DEBIAN] + sys.argv)

import harness
import netns
from harness import Cluster, Skip, is_prime, read_records

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
UNITS = os.path.join(ROOT, "deploy", "systemd")
KINDS = ("broker", "worker", "source", "sink")
# Service keys the namespace run understands; any other (env_file, user,
# entrypoint tricks...) must be taught to it before the compose file uses it.
KNOWN_KEYS = {"image", "build", "init", "stop_grace_period", "command", "entrypoint",
              "environment", "ports", "restart", "deploy", "healthcheck", "volumes"}
# What Compose 1.x says of docker-compose.yml's Swarm-only settings.
IGNORED_WARNING = re.compile(r"^The following deploy sub-keys are not supported and have "
                             r"been ignored: endpoint_mode$")


def compose_tool():
    """argv of a working docker-compose, or None."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def load_compose():
    if yaml is None:
        raise Skip("PyYAML missing: install python3-yaml "
                   "(listed in tools/packages-deploy-test.txt)")
    with open(COMPOSE) as handle:
        return yaml.safe_load(handle)


def interpolate(value):
    """Compose's ${NAME:-default} and ${NAME}, as with an empty environment."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", str(value))


def words(value):
    """A compose command or entrypoint (list or string) as argv."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else shlex.split(value)


def services():
    """{name: (argv, kind, environment, replicas)} as the compose file says."""
    result = {}
    for name, spec in load_compose()["services"].items():
        unknown = set(spec) - KNOWN_KEYS
        assert not unknown, "%s: keys the namespace run does not model: %s" % (name, unknown)
        argv = words(spec.get("entrypoint")) + words(spec.get("command"))
        assert argv, "%s: give the program in `command`" % name
        match = re.fullmatch(r"(?:/usr/local/bin/)?playzmq-(\w+)", argv[0])
        assert match and match.group(1) in KINDS, "%s: %s is not in the image" % (name, argv[0])
        env = spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        for key, value in env.items():
            assert value is not None, "%s: %s is taken from the host" % (name, key)
            assert not isinstance(value, bool), "%s: quote %s's value" % (name, key)
        env = {k: interpolate(v) for k, v in env.items()}
        replicas = int((spec.get("deploy") or {}).get("replicas", 1))
        result[name] = (argv, match.group(1), env, replicas)
    return result


def option_variables(kind):
    """The PLAYZMQ_* variables a program reads, from its --help."""
    out = subprocess.run([harness.binary(kind), "--help"], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    return set(re.findall(r"\[(PLAYZMQ_\w+)\]", out))


def test_compose_config_validates():
    tool = compose_tool()
    if not tool:
        raise Skip("neither docker-compose nor `docker compose` here: install "
                   "Debian's docker-compose (tools/packages-deploy-test.txt)")
    run = lambda *args: subprocess.run(tool + ["-f", COMPOSE] + list(args), cwd=ROOT,
                                       capture_output=True, text=True, timeout=60)
    done = run("config", "-q")
    noise = [line for line in done.stderr.splitlines()
             if line.strip() and not IGNORED_WARNING.match(line.strip())]
    assert done.returncode == 0 and not noise, \
        "%s config: %s%s" % (" ".join(tool), done.stdout, done.stderr)
    done = run("config", "--services")
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {"broker", "worker", "source", "primes", "numbers"}


def test_compose_file_shape():
    spec = load_compose()["services"]
    found = services()
    assert [found[n][1] for n in ("broker", "worker", "source", "primes", "numbers")] == \
        ["broker", "worker", "source", "sink", "sink"]
    assert found["worker"][3] >= 2, "the demo should show several workers"
    # --scale needs replicas without a fixed name or host port.
    assert "container_name" not in spec["worker"] and "ports" not in spec["worker"]
    assert found["primes"][2].get("PLAYZMQ_TAGS") == "P"
    assert found["numbers"][2].get("PLAYZMQ_TAGS") == "N"
    for name, (argv, kind, env, _) in found.items():
        if kind != "broker":
            assert env.get("PLAYZMQ_BROKER") == "broker", name
        assert spec[name].get("restart") in ("unless-stopped", "on-failure", "always"), name
        unknown = set(k for k in env if k.startswith("PLAYZMQ_")) - option_variables(kind)
        assert not unknown, "%s: playzmq-%s reads no %s" % (name, kind, unknown)


def test_compose_journal_ports_and_swarm():
    spec = load_compose()
    broker = spec["services"]["broker"]
    journal = interpolate(broker["environment"]["PLAYZMQ_JOURNAL"])
    assert any(v.split(":")[1:] == [journal] and v.split(":")[0] in spec.get("volumes", {})
               for v in broker.get("volumes", [])), "no named volume on %s" % journal
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        dockerfile = handle.read()
    assert "install -d -o playzmq -g playzmq -m 700 %s" % journal in dockerfile, \
        "a new volume takes the image directory's owner: create it for the user"
    # Swarm: no virtual IP before the broker; no ports here (an ingress port
    # and dnsrr exclude each other), the loopback ones in the override file.
    assert broker["deploy"]["endpoint_mode"] == "dnsrr" and "ports" not in broker
    with open(os.path.join(ROOT, "docker-compose.override.yml")) as handle:
        ports = yaml.safe_load(handle)["services"]["broker"]["ports"]
    assert [interpolate(p) for p in ports] == ["127.0.0.1:%d:%d" % (p, p)
                                               for p in range(5555, 5560)], ports
    with open(os.path.join(ROOT, ".dockerignore")) as handle:
        assert "docker-compose*.yml" in handle.read().split()


def test_compose_services_in_namespaces():
    found = services()
    with netns.Network() as net, Cluster("compose") as c:
        containers = []             # (host, service), in compose file order
        for name, (argv, kind, env, replicas) in found.items():
            replicas = 2 if name == "worker" else replicas
            for index in range(1, replicas + 1):
                host = name if replicas == 1 else "%s-%d" % (name, index)
                net.add_host(host)
                if host != name and index == 1:
                    net.alias(name, host)
                containers.append((host, name))
        procs = {}
        # Reverse order, the broker last and a second late: order must not
        # matter. The compose values are used as they are (5 numbers a second
        # is quick enough), with no environment but theirs and PATH.
        for host, name in reversed(containers):
            argv, kind, env, _ = found[name]
            if kind == "broker":
                time.sleep(1.0)
                # The journal's volume: a scratch directory here.
                if "PLAYZMQ_JOURNAL" in env:
                    env = dict(env, PLAYZMQ_JOURNAL=c.path("journal"))
                    os.makedirs(env["PLAYZMQ_JOURNAL"], exist_ok=True)
            procs[host] = c.start(kind, *argv[1:], name=host, stdout=c.path(host + ".out"),
                                  env=dict(env, PATH=os.environ.get("PATH", "/usr/bin:/bin")),
                                  prefix=net.exec_prefix(host))
        broker = procs["broker"]
        # source, publish, dispatch, results, history
        assert len(broker.wait_for_log(r"endpoint bound to tcp://\S+:555\d", count=5)) == 5

        primes_out, numbers_out = c.path("primes.out"), c.path("numbers.out")
        primes = harness.wait_for_lines(primes_out, 3, 45)
        numbers = harness.wait_for_lines(numbers_out, 20, 20)
        for host, proc in procs.items():
            assert proc.alive(), "%s exited:\n%s" % (host, proc.log())
        # docker stop: SIGTERM to PID 1, which must end cleanly.
        for host in ["source", "primes", "numbers", "worker-1", "worker-2", "broker"]:
            assert procs[host].stop(timeout=5) == 0, "%s:\n%s" % (host, procs[host].log())

        got_primes, got_numbers = read_records(primes_out), read_records(numbers_out)
        print("compose: primes=%d numbers=%d %s" % (len(got_primes), len(got_numbers), " ".join(
            "%s=%s" % (h, re.findall(r"tested (\d+)", procs[h].log()))
            for h in ("worker-1", "worker-2"))), flush=True)
        assert primes >= 3 and numbers >= 20, "primes %d, numbers %d:\n%s" % (
            primes, numbers, broker.log())
        assert all(tag == "P" and is_prime(v) for tag, v in got_primes), got_primes
        assert all(tag == "N" for tag, _ in got_numbers), got_numbers
        for host in ("worker-1", "worker-2"):
            tested = re.findall(r"worker: tested (\d+) numbers", procs[host].log())
            assert tested and int(tested[-1]) > 0, "%s did no work:\n%s" % (
                host, procs[host].log())


def dockerfile_stages():
    """[(base, alias, [(instruction, arguments)])] with continuations joined."""
    with open(os.path.join(ROOT, "Dockerfile")) as handle:
        text = re.sub(r"\\\n(\s*#.*\n)*", " ", handle.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            parts = rest.split()
            stages.append((parts[0], parts[2] if len(parts) > 2 else None, []))
        else:
            stages[-1][2].append((instruction.upper(), rest.strip()))
    return stages


def depends_closure(packages):
    """Installed packages reachable from packages through Depends."""
    seen, todo = set(), list(packages)
    while todo:
        package = todo.pop()
        if package in seen:
            continue
        done = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", package],
                              capture_output=True, text=True)
        if done.returncode != 0:
            continue
        seen.add(package)
        for name in re.findall(r"(?:^|[,|])\s*([a-z0-9][a-z0-9+.-]*)", done.stdout):
            todo.append(name)
    return seen


def owners(paths):
    """{library path: the Debian package that holds it} for those dpkg
    knows, trying each path as given, resolved, and across the /usr merge."""
    candidates = {}
    for path in paths:
        real = os.path.realpath(path)
        for name in (path, real, "/usr" + real, real.replace("/usr/lib/", "/lib/", 1)):
            candidates.setdefault(name, path)
    done = subprocess.run(["dpkg", "-S"] + sorted(candidates), capture_output=True,
                          text=True)
    found = {}
    for line in done.stdout.splitlines():
        package, _, name = line.partition(": ")
        if name in candidates:
            found[candidates[name]] = package.split(":")[0].split(",")[0]
    return found


def test_dockerfile_builds_like_ci_and_has_the_runtime_libraries():
    stages = dockerfile_stages()
    assert [s[0] for s in stages] == ["debian:bookworm-slim"] * 2, stages
    assert stages[0][1] == "build"
    runs = [args for ins, args in stages[0][2] if ins == "RUN"]
    assert runs == ["tools/deps.sh tools/packages-build.txt", "tools/build.sh"], runs
    with open(os.path.join(ROOT, "run.sh")) as handle:
        run_sh = handle.read()
    assert "tools/deps.sh tools/packages-build.txt" in run_sh and "tools/build.sh" in run_sh
    with open(os.path.join(ROOT, ".dockerignore")) as handle:
        assert "build*/" in handle.read().split(), "a host build/ would reach the image"

    runtime = stages[1][2]
    copied = " ".join(args for ins, args in runtime if ins == "COPY")
    for kind in KINDS:
        assert "/src/build/%s/playzmq-%s" % (kind, kind) in copied, kind
    assert "--from=build" in copied and copied.split()[-1] == "/usr/local/bin/"
    user = [args for ins, args in runtime if ins == "USER"]
    assert user and user[-1] not in ("root", "0"), "runs as root"
    last = [args for ins, args in runtime if ins in ("CMD", "ENTRYPOINT")][-1]
    assert last.startswith("["), "exec form, or SIGTERM goes to a shell"

    if not shutil.which("dpkg") or not shutil.which("ldd"):
        raise Skip("no dpkg or ldd: cannot check the runtime libraries")
    install = " ".join(args for ins, args in runtime if ins == "RUN")
    packages = re.search(r"apt-get install ([^&;]*)", install).group(1).split()
    packages = [p for p in packages if not p.startswith("-")]
    closure = depends_closure(packages)
    assert set(packages) <= closure, "runtime packages not installed here: %s" % packages
    needs = {}                      # library path -> the first program loading it
    for kind in KINDS:
        ldd = subprocess.run(["ldd", harness.binary(kind)], capture_output=True,
                             text=True, check=True).stdout
        for path in re.findall(r"=> (/\S+)", ldd):
            needs.setdefault(path, kind)
    found = owners(needs)
    for path, kind in needs.items():
        assert path in found, "playzmq-%s: no package holds %s" % (kind, path)
        assert found[path] in closure, "playzmq-%s needs %s (%s), not in %s" % (
            kind, path, found[path], packages)


def test_systemd_units_verify():
    names = ["playzmq-broker.service", "playzmq-worker@.service"]
    texts = {}
    for name in names:
        with open(os.path.join(UNITS, name)) as handle:
            texts[name] = handle.read()
        for line in ("EnvironmentFile=/etc/playzmq/playzmq.env", "Restart=on-failure",
                     "KillSignal=SIGTERM", "DynamicUser=yes", "NoNewPrivileges=yes",
                     "ProtectSystem=strict"):
            assert line in texts[name].splitlines(), "%s: no %s" % (name, line)
    # The example environment file names only variables the programs read.
    readable = option_variables("broker") | option_variables("worker")
    with open(os.path.join(UNITS, "playzmq.env")) as handle:
        named = set(re.findall(r"^#?(PLAYZMQ_\w+)=", handle.read(), re.M))
    assert named and named <= readable, "unknown: %s" % (named - readable)

    if not shutil.which("systemd-analyze"):
        raise Skip("systemd-analyze missing: install systemd "
                   "(tools/packages-deploy-test.txt) to verify the units")
    scratch = tempfile.mkdtemp(prefix="units-")
    try:
        paths = []
        for name in names:
            # verify insists that ExecStart= exists: point it at the build.
            text = re.sub(r"/usr/local/bin/playzmq-(\w+)",
                          lambda m: os.path.abspath(harness.binary(m.group(1))), texts[name])
            paths.append(os.path.join(scratch, name))
            with open(paths[-1], "w") as handle:
                handle.write(text)
        done = subprocess.run(["systemd-analyze", "verify"] + paths, capture_output=True,
                              text=True, timeout=60)
        # verify exits 0 on unknown keys and bad values, only warning: fail
        # on any line about our units too.
        ours = [line for line in (done.stdout + done.stderr).splitlines()
                if "playzmq" in line]
        assert done.returncode == 0 and not ours, "systemd-analyze verify:\n%s%s" % (
            done.stdout, done.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    harness.run_tests(globals())
