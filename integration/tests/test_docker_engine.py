"""The harness's Docker engine, checked without starting one: the daemon's command line keeps it
off the host's network, and the clean-up finds what it must remove."""

from __future__ import annotations

import os
from pathlib import Path

from integration.harness import docker_engine
from integration.harness.docker_engine import EnginePaths, StopReport


def test_dockerd_is_told_to_leave_the_hosts_network_alone(tmp_path: Path) -> None:
    paths = EnginePaths(tmp_path)
    argv = docker_engine.dockerd_argv(paths, "/usr/sbin/dockerd")
    assert argv[0] == "/usr/sbin/dockerd"
    for flag in ("--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none"):
        assert flag in argv
    # Everything of its own under one folder, its own configuration file included.
    assert f"--data-root={tmp_path / 'data'}" in argv
    assert f"--exec-root={tmp_path / 'exec'}" in argv
    assert f"--pidfile={tmp_path / 'dockerd.pid'}" in argv
    assert f"--config-file={tmp_path / 'daemon.json'}" in argv
    assert f"--host=unix://{tmp_path / 'docker.sock'}" in argv
    assert paths.docker_host == f"unix://{tmp_path / 'docker.sock'}"


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
45 27 254:0 /var/tmp/e/data /var/tmp/e/data rw,relatime shared:1 - ext4 /dev/vda rw
72 27 0:4 net:[4026531833] /var/tmp/e/exec/netns/default rw - nsfs nsfs rw
80 45 0:50 / /var/tmp/e/data/overlay2/abc/merged rw - overlay overlay rw
81 27 0:51 / /var/tmp/e/database rw - tmpfs tmpfs rw
82 27 0:52 / /var/tmp/with\\040space/data rw - tmpfs tmpfs rw
"""


def test_mounts_under_its_folders_deepest_first() -> None:
    found = docker_engine.mounts_under(
        [Path("/var/tmp/e/data"), Path("/var/tmp/e/exec")], MOUNTINFO
    )
    assert found == [
        Path("/var/tmp/e/data/overlay2/abc/merged"),
        Path("/var/tmp/e/exec/netns/default"),
        Path("/var/tmp/e/data"),
    ]  # not /var/tmp/e/database: a sibling whose name starts the same
    assert docker_engine.mounts_under([Path("/var/tmp/with space")], MOUNTINFO) == [
        Path("/var/tmp/with space/data")
    ]


def test_a_firewall_difference_names_the_rule_that_appeared() -> None:
    before = "$ iptables-nft -t filter -S\n-P FORWARD ACCEPT\n/proc/sys/net/ipv4/ip_forward = 0\n"
    after = "$ iptables-nft -t filter -S\n-P FORWARD DROP\n/proc/sys/net/ipv4/ip_forward = 1\n"
    assert docker_engine.firewall_difference(before, before) == ""
    difference = docker_engine.firewall_difference(before, after)
    assert "+-P FORWARD DROP" in difference
    assert "+/proc/sys/net/ipv4/ip_forward = 1" in difference


def test_the_firewall_state_covers_both_iptables_back_ends_and_forwarding() -> None:
    commands = {" ".join(argv) for argv in docker_engine.FIREWALL_COMMANDS}
    for binary in ("iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"):
        assert f"{binary} -t filter -S" in commands
        assert f"{binary} -t nat -S" in commands
    # Reading a legacy table first creates it: read after, iptables-nft would note it only then.
    order = [argv[0] for argv in docker_engine.FIREWALL_COMMANDS]
    assert order.index("iptables-legacy") < order.index("iptables-nft")
    assert order.index("ip6tables-legacy") < order.index("ip6tables-nft")
    assert "/proc/sys/net/ipv4/ip_forward" in docker_engine.FORWARDING_SYSCTLS
    state = docker_engine.firewall_state()
    assert "/proc/sys/net/ipv4/ip_forward = " in state


def test_a_stop_report_is_clean_only_with_nothing_left() -> None:
    clean = StopReport(1, {}, [], {}, "")
    assert clean.clean
    assert "identical before and after" in clean.describe()
    dirty = StopReport(1, {}, [Path("/x/exec/netns/default")], {}, "+-P FORWARD DROP\n")
    assert not dirty.clean
    assert "still mounted: /x/exec/netns/default" in dirty.describe()
    assert "firewall changed" in dirty.describe()


def test_an_engine_whose_owner_died_is_taken_over() -> None:
    assert docker_engine._owner_alive("cli")
    assert docker_engine._owner_alive(str(os.getpid()))
    assert not docker_engine._owner_alive("")
    assert not docker_engine._owner_alive("999999999")


def test_the_engine_lives_beside_the_flavours_unless_told() -> None:
    assert docker_engine.engine_dir({"HARNESS_DOCKER_DIR": "/srv/engine"}) == Path("/srv/engine")
    assert docker_engine.engine_dir({"XDG_CACHE_HOME": "/c"}) == Path(
        "/c/orthanc-python-plugins/docker"
    )
