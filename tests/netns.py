"""netns - small networks of hosts on one machine, for the network tests

A Network is a set of Linux network namespaces, one per "host", each with
one interface (eth0) and an address in a private /24, all plugged into a
bridge that lives in a namespace of its own. Nothing is added to the root
namespace: no interface, no address, no route. Host names resolve through
/etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts.

    with netns.Network() as net, harness.Cluster("x") as c:
        net.add_host("broker")
        net.add_host("worker")
        c.start("broker", prefix=net.exec_prefix("broker"))
        net.cut("worker"); ...; net.mend("worker")

Leaving the with block deletes every namespace and hosts file it made, even
on an exception or SIGTERM (harness.Cluster turns SIGTERM into SystemExit).
Namespace names are pzn<pid>-<n>, so that parallel runs cannot collide, and
sweep_stale() removes those of runs that died without cleaning up.
"""

import os
import re
import shutil
import subprocess

import harness

NETNS_ETC = "/etc/netns"
PREFIX = "pzn"


def ip(*args, check=True):
    """Runs ip(8); returns its stdout. Raises RuntimeError with its stderr."""
    done = subprocess.run(["ip"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=10)
    if check and done.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(map(str, args)),
                                         done.stderr.strip() or done.returncode))
    return done.stdout


def sweep_stale():
    """Deletes namespaces named pzn<pid>-* whose process no longer runs."""
    try:
        listing = ip("netns", "list")
    except (RuntimeError, OSError):
        return
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.match(r"^%s(\d+)-\w+$" % PREFIX, name)
        if match and not os.path.exists("/proc/%s" % match.group(1)):
            ip("netns", "del", name, check=False)
            shutil.rmtree(os.path.join(NETNS_ETC, name), ignore_errors=True)


class Host:
    """One namespace: its name, address and interface."""

    def __init__(self, name, ns, address, port):
        self.name = name            # host name, as in the hosts files
        self.ns = ns                # namespace name
        self.address = address      # IPv4 address on eth0
        self.port = port            # the bridge port (in the bridge namespace)


class Network:
    """Namespaces joined by a bridge. Use as a context manager."""

    def __init__(self, subnet="10.77.0"):
        self.base = "%s%d-" % (PREFIX, os.getpid())
        self.subnet = subnet        # the first three octets of a /24
        self.bridge_ns = None
        self.hosts = {}             # name -> Host, in the order added
        self.namespaces = []        # every namespace made, to delete
        self.aliases = {}           # extra names -> host name

    def __enter__(self):
        sweep_stale()
        try:
            self.bridge_ns = self._add_ns("br")
        except (RuntimeError, OSError) as error:
            raise harness.Skip("ip netns not permitted here: %s" % error)
        try:
            ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
            ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _add_ns(self, suffix):
        name = self.base + suffix
        ip("netns", "add", name)
        self.namespaces.append(name)
        return name

    def add_host(self, name):
        """Adds a namespace with eth0 at the next address, plugged into the
        bridge, and rewrites every hosts file. Returns the Host."""
        assert name not in self.hosts and re.match(r"^[a-z][a-z0-9-]*$", name), name
        index = len(self.hosts) + 1
        ns = self._add_ns("h%d" % index)
        port = "p%d" % index
        address = "%s.%d" % (self.subnet, index)
        ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port,
           "netns", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "set", port, "master", "br0")
        ip("-n", self.bridge_ns, "link", "set", port, "up")
        ip("-n", ns, "addr", "add", address + "/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        host = self.hosts[name] = Host(name, ns, address, port)
        self._write_hosts()
        return host

    def alias(self, alias, name):
        """Makes alias resolve to host name's address everywhere."""
        self.aliases[alias] = name
        self._write_hosts()

    def _write_hosts(self):
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost"]
        for host in self.hosts.values():
            names = [host.name] + [a for a, n in self.aliases.items() if n == host.name]
            lines.append("%s\t%s" % (host.address, " ".join(names)))
        text = "\n".join(lines) + "\n"
        for host in self.hosts.values():
            directory = os.path.join(NETNS_ETC, host.ns)
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "hosts"), "w") as handle:
                handle.write(text)

    def exec_prefix(self, name):
        """The argv prefix that runs a command inside host name's namespace."""
        return ["ip", "netns", "exec", self.hosts[name].ns]

    def cut(self, name):
        """Unplugs host name from the bridge: its eth0 stays up and keeps its
        address, packets just stop, as when a cable is pulled at the switch."""
        ip("-n", self.bridge_ns, "link", "set", self.hosts[name].port, "down")

    def mend(self, name):
        """Plugs host name back in."""
        ip("-n", self.bridge_ns, "link", "set", self.hosts[name].port, "up")

    def close(self):
        """Deletes every namespace made and its /etc/netns directory. Any
        process still inside keeps its namespace alive: stop them first."""
        for ns in reversed(self.namespaces):
            ip("netns", "del", ns, check=False)
            shutil.rmtree(os.path.join(NETNS_ETC, ns), ignore_errors=True)
        self.namespaces = []
