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
  each named volume is a scratch directory, its mount point replaced in the
  commands and environments; the one-shot `keys` service's script runs
  first, so the run is keyed (CURVE on every endpoint);
- the `keys` script makes keys only where they are missing: run again it
  changes nothing, a key removed from the broker's allow directory stays
  out, a new broker key allows every key again; every service that runs
  after it depends on its completion (docker-compose.override.yml) and
  reads its keys from its own volume, read-only;
- deploy/swarm-keys.yml gives each service the secrets its CURVE paths
  name, all declared, and the broker exactly the allowed public ones;
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
OVERRIDE = os.path.join(ROOT, "docker-compose.override.yml")
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
    """Compose's ${NAME:-default}, ${NAME} and $$ (a $), as with an empty
    environment."""
    return re.sub(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}",
                  lambda m: "$" if m.group(0) == "$$" else m.group(2) or "", str(value))


def words(value):
    """A compose command or entrypoint (list or string) as argv."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else shlex.split(value)


def services():
    """{name: (argv, kind, environment, replicas)} as the compose file says;
    kind "keys" for the one service that runs a shell script of
    playzmq-keygen commands."""
    result = {}
    for name, spec in load_compose()["services"].items():
        unknown = set(spec) - KNOWN_KEYS
        assert not unknown, "%s: keys the namespace run does not model: %s" % (name, unknown)
        argv = [interpolate(a) for a in words(spec.get("entrypoint")) + words(spec.get("command"))]
        assert argv, "%s: give the program in `command`" % name
        if argv[:2] == ["/bin/sh", "-ec"] and "playzmq-keygen" in argv[2]:
            result[name] = (argv, "keys", {}, 1)
            continue
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
    assert set(done.stdout.split()) == {"keys", "broker", "worker", "source", "primes",
                                        "numbers"}
    # With the override file, as `docker compose up` reads them: every
    # program starts once `keys` has exited 0.
    done = subprocess.run(tool + ["-f", COMPOSE, "-f", OVERRIDE, "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    merged = yaml.safe_load(done.stdout)["services"]
    for name, spec in merged.items():
        if name != "keys":
            assert spec.get("depends_on") == {
                "keys": {"condition": "service_completed_successfully"}}, \
                "%s: %s" % (name, spec.get("depends_on"))
    assert "depends_on" not in merged["keys"]


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
    assert found["keys"][1] == "keys"
    # Swarm has no depends_on: a one-shot task must not be restarted forever.
    assert spec["keys"]["deploy"]["restart_policy"] == {"condition": "on-failure"}
    for name, (argv, kind, env, _) in found.items():
        if kind == "keys":
            continue
        if kind != "broker":
            assert env.get("PLAYZMQ_BROKER") == "broker", name
        assert spec[name].get("restart") in ("unless-stopped", "on-failure", "always"), name
        unknown = set(k for k in env if k.startswith("PLAYZMQ_")) - option_variables(kind)
        assert not unknown, "%s: playzmq-%s reads no %s" % (name, kind, unknown)


def mounts(spec):
    """{mount point: (volume, read_only)} of a compose service."""
    found = {}
    for volume in spec.get("volumes") or []:
        parts = volume.split(":")
        found[parts[1]] = (parts[0], parts[2:] == ["ro"])
    return found


def test_compose_keys_per_service():
    """Every program has CURVE keys, from its own volume mounted read-only
    on /etc/playzmq, and they are the files the keys service writes there
    (its script run here, in scratch directories)."""
    spec = load_compose()
    found = services()
    made = mounts(spec["services"]["keys"])          # /keys/NAME: keys-NAME
    volumes_of_keys = set(volume for volume, _ in made.values())
    assert volumes_of_keys <= set(spec["volumes"]), volumes_of_keys
    with Cluster("compose-keys-per-service") as c:
        volumes = scratch_volumes(c, spec)
        run_keys_script(c, found, volumes)
        broker_key = keys_of(os.path.join(volumes["keys-broker"], "keys", "broker.cert"))[0]
        for name, (argv, kind, env, _) in found.items():
            if kind == "keys":
                continue
            mine = mounts(spec["services"][name])
            assert "/etc/playzmq" in mine and mine["/etc/playzmq"][1], \
                "%s: no read-only keys volume on /etc/playzmq: %s" % (name, mine)
            volume = mine["/etc/playzmq"][0]
            assert volume in volumes_of_keys, "%s: %s is not one the keys service writes" % (
                name, volume)
            others = [v for v, _ in mine.values() if v in volumes_of_keys and v != volume]
            assert not others, "%s sees other services' keys: %s" % (name, others)
            # What the flags name is what the keys service writes there (its
            # side of the same volume), run here in scratch directories.
            in_volume = lambda path: os.path.join(volumes[volume], path[len("/etc/playzmq/"):])
            if kind == "broker":
                secret = in_volume(env["PLAYZMQ_CURVE_CERT"])
                allowed = sorted(os.listdir(in_volume(env["PLAYZMQ_CURVE_ALLOW"])))
                assert allowed == ["health.cert", "sink.cert", "source.cert",
                                   "worker.cert"], allowed
                # The health check: a sink's key and the broker's public one.
                health = " ".join(interpolate(w) for w in
                                  spec["services"]["broker"]["healthcheck"]["test"])
                assert '--curve-cert "$HEALTH_CURVE_CERT" --curve-server ' \
                    '"$HEALTH_CURVE_SERVER"' in health, health
                cert = in_volume(env["HEALTH_CURVE_CERT"])
                server = in_volume(env["HEALTH_CURVE_SERVER"])
                assert keys_of(cert)[1] and keys_of(server)[0] == keys_of(secret)[0]
                assert keys_of(cert)[0] in [keys_of(os.path.join(
                    in_volume(env["PLAYZMQ_CURVE_ALLOW"]), name))[0] for name in allowed]
            else:
                role = kind
                secret = in_volume(env["PLAYZMQ_CURVE_CERT"])
                server = in_volume(env["PLAYZMQ_CURVE_SERVER"])
                assert keys_of(server) == (broker_key, None), "%s: %s" % (name, server)
                allowed = os.path.join(volumes["keys-broker"], "allow", role + ".cert")
                assert keys_of(allowed)[0] == keys_of(secret)[0], "%s: not allowed" % name
                with open(allowed) as handle:
                    assert 'role = "%s"' % role in handle.read(), allowed
            assert keys_of(secret)[1], "%s: %s holds no secret key" % (name, secret)
            assert os.stat(secret).st_mode & 0o077 == 0, "%s: %s is not private" % (
                name, secret)


def keys_of(path):
    """(public key, secret key or None) of a certificate file."""
    with open(path) as handle:
        text = handle.read()
    public = re.search(r'public-key = "(.{40})"', text)
    secret = re.search(r'secret-key = "(.{40})"', text)
    assert public, "%s: no public key" % path
    return public.group(1), secret.group(1) if secret else None


def scratch_volumes(c, spec):
    """{volume: scratch directory} for the compose file's named volumes. The
    keys service's (mounted on /keys/NAME) are ROOT/keys/NAME, so that its
    script's paths, some built in a loop, move by their common prefix."""
    volumes = {name: c.path("volume-" + name) for name in spec["volumes"]}
    for point, (volume, _) in mounts(spec["services"]["keys"]).items():
        assert os.path.dirname(point) == "/keys", point
        volumes[volume] = c.path("root") + point
    for path in volumes.values():
        os.makedirs(path, mode=0o700)
    return volumes


def run_keys_script(c, found, volumes):
    """Runs the keys service's script with its volumes in scratch
    directories (scratch_volumes); its log."""
    argv = found["keys"][0]
    # /keys where a path starts (not in ".../keys/" or "$role/keys").
    script = re.sub(r"(?<![\w/.$-])/keys(?=/)", c.path("root") + "/keys", argv[2])
    path = os.path.dirname(harness.binary("keygen")) + ":" + os.environ.get("PATH", "/usr/bin:/bin")
    done = subprocess.run(argv[:2] + [script], env={"PATH": path}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, "keys: %s%s" % (done.stdout, done.stderr)
    return done.stderr + done.stdout


def snapshot(directory):
    """{relative path: (contents, mode)} of the files under directory."""
    found = {}
    for parent, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(parent, name)
            with open(path) as handle:
                found[os.path.relpath(path, directory)] = (handle.read(),
                                                           os.stat(path).st_mode & 0o777)
    return found


def test_compose_keys_script_only_makes_what_is_missing():
    found = services()
    with Cluster("compose-keys") as c:
        volumes = scratch_volumes(c, load_compose())
        run_keys_script(c, found, volumes)
        first = {name: snapshot(path) for name, path in volumes.items()}
        broker = first["keys-broker"]
        assert sorted(p for p in broker if p.startswith("allow/")) == [
            "allow/health.cert", "allow/sink.cert", "allow/source.cert", "allow/worker.cert"]
        for name, files in first.items():
            for path, (_, mode) in files.items():
                assert mode & 0o077 == 0 or not path.endswith("_secret"), (name, path, mode)
        # Again: nothing changes.
        run_keys_script(c, found, volumes)
        assert {name: snapshot(path) for name, path in volumes.items()} == first
        # A revoked key stays out.
        os.remove(os.path.join(volumes["keys-broker"], "allow", "worker.cert"))
        run_keys_script(c, found, volumes)
        assert "allow/worker.cert" not in snapshot(volumes["keys-broker"])
        # A new worker key (its volume deleted) is allowed.
        shutil.rmtree(volumes["keys-worker"])
        os.makedirs(volumes["keys-worker"], mode=0o700)
        run_keys_script(c, found, volumes)
        worker = snapshot(volumes["keys-worker"])
        allowed = snapshot(volumes["keys-broker"])["allow/worker.cert"][0]
        assert worker["keys/worker.cert"][0] == allowed
        assert allowed != first["keys-broker"]["allow/worker.cert"][0]
        # A new broker key: every client gets its public certificate, and
        # every key is allowed again.
        shutil.rmtree(volumes["keys-broker"])
        os.makedirs(volumes["keys-broker"], mode=0o700)
        run_keys_script(c, found, volumes)
        broker = snapshot(volumes["keys-broker"])
        for role in ("source", "worker", "sink"):
            mine = snapshot(volumes["keys-" + role])
            assert mine["keys/broker.cert"][0] == broker["keys/broker.cert"][0], role
            assert broker["allow/%s.cert" % role][0] == mine["keys/%s.cert" % role][0], role


def test_compose_journal_ports_and_swarm():
    spec = load_compose()
    broker = spec["services"]["broker"]
    journal = interpolate(broker["environment"]["PLAYZMQ_JOURNAL"])
    assert any(v.split(":")[1:] == [journal] and v.split(":")[0] in spec.get("volumes", {})
               for v in broker.get("volumes", [])), "no named volume on %s" % journal
    # A new volume takes the image directory's owner: the image makes every
    # mount point for the user.
    made = set()
    for _, _, instructions in dockerfile_stages()[1:]:
        for instruction, args in instructions:
            for match in re.finditer(r"install -d -o playzmq -g playzmq -m 700 ([^&;]*)", args):
                made.update(match.group(1).split())
    for name, service in spec["services"].items():
        for point in mounts(service):
            assert point in made, "%s: the image does not make %s for playzmq" % (name, point)
    # Swarm: no virtual IP before the broker; no ports here (an ingress port
    # and dnsrr exclude each other), the loopback ones in the override file.
    assert broker["deploy"]["endpoint_mode"] == "dnsrr" and "ports" not in broker
    with open(os.path.join(ROOT, "docker-compose.override.yml")) as handle:
        ports = yaml.safe_load(handle)["services"]["broker"]["ports"]
    assert [interpolate(p) for p in ports] == ["127.0.0.1:%d:%d" % (p, p)
                                               for p in range(5555, 5560)], ports
    with open(os.path.join(ROOT, ".dockerignore")) as handle:
        assert "docker-compose*.yml" in handle.read().split()


def test_swarm_keys_file():
    """deploy/swarm-keys.yml: each service's CURVE paths are secrets given to
    it, declared (`docker stack config` does not check that), the broker's
    allow directory holds exactly the allowed roles' public certificates,
    and each client's secret is its own role's."""
    with open(os.path.join(ROOT, "deploy", "swarm-keys.yml")) as handle:
        spec = yaml.safe_load(handle)
    declared = set(spec["secrets"])
    base = load_compose()["services"]
    for name, service in spec["services"].items():
        assert name in base, name
        if name == "keys":
            assert service["deploy"]["replicas"] == 0
            continue
        targets = {}            # {path in the container: secret}
        for secret in service["secrets"]:
            source = secret if isinstance(secret, str) else secret["source"]
            target = secret if isinstance(secret, str) else secret.get("target", source)
            assert source in declared, "%s: secret %s not declared" % (name, source)
            targets["/run/secrets/" + target] = source
        env = service["environment"]
        kind = services()[name][1]
        assert env["PLAYZMQ_CURVE_CERT"] in targets, name
        if kind == "broker":
            assert targets[env["PLAYZMQ_CURVE_CERT"]] == "broker.cert_secret"
            allow = env["PLAYZMQ_CURVE_ALLOW"]
            loaded = sorted(source for path, source in targets.items()
                            if os.path.dirname(path) == allow and path.endswith(".cert"))
            assert loaded == ["health.cert", "sink.cert", "source.cert", "worker.cert"], loaded
            # The health check (its test in docker-compose.yml names these).
            assert "healthcheck" not in service, "a second test is appended to the first"
            assert targets[env["HEALTH_CURVE_CERT"]] == "health.cert_secret"
            assert targets[env["HEALTH_CURVE_SERVER"]] == "broker.cert"
        else:
            assert targets[env["PLAYZMQ_CURVE_CERT"]] == kind + ".cert_secret", name
            assert targets[env["PLAYZMQ_CURVE_SERVER"]] == "broker.cert", name


def test_compose_services_in_namespaces():
    found = services()
    spec = load_compose()
    with netns.Network() as net, Cluster("compose") as c:
        # Named volumes: scratch directories; the keys first (depends_on).
        volumes = scratch_volumes(c, spec)
        print("compose: " + run_keys_script(c, found, volumes).strip().splitlines()[-1],
              flush=True)

        def mounted(name, value):
            """value with the service's mount points made scratch paths."""
            for point, (volume, _) in sorted(mounts(spec["services"][name]).items(),
                                             key=lambda kv: -len(kv[0])):
                if value == point or value.startswith(point + "/"):
                    return volumes[volume] + value[len(point):]
            return value
        containers = []             # (host, service), in compose file order
        for name, (argv, kind, env, replicas) in found.items():
            if kind == "keys":
                continue
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
            argv = [mounted(name, a) for a in argv]
            env = {k: mounted(name, v) for k, v in env.items()}
            procs[host] = c.start(kind, *argv[1:], name=host, stdout=c.path(host + ".out"),
                                  env=dict(env, PATH=os.environ.get("PATH", "/usr/bin:/bin")),
                                  prefix=net.exec_prefix(host))
        broker = procs["broker"]
        # source, publish, dispatch, results, history
        assert len(broker.wait_for_log(r"endpoint bound to tcp://\S+:555\d", count=5)) == 5
        # Keyed: the source's, the workers' and the sinks' keys, and the
        # health check's.
        allowed = broker.wait_for_log(r"zap: \d+ keys allowed")[0]
        assert "zap: 4 keys allowed" in allowed and "running open" not in broker.log(), \
            broker.log()

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
    # Keys: each credential is what ExecStart gives --curve-cert (%d is its
    # directory); the broker reloads its allow directory on SIGHUP.
    # tests/test_recipe.py runs the units' lines with the recipe's files.
    for name, text in texts.items():
        credentials = re.findall(r"^LoadCredential=([\w.]+):(/etc/playzmq/\S+)$", text, re.M)
        joined = re.sub(r"\\\n\s*", " ", text)           # continuation lines
        start = re.search(r"^ExecStart=(.*)$", joined, re.M).group(1)
        assert credentials and all("--curve-cert %%d/%s" % ident in start
                                   for ident, _ in credentials), (name, credentials, start)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in texts[names[0]].splitlines()
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
