#!/usr/bin/python3
"""podman-compose, as Debian bookworm ships it (1.0.3), with one upstream fix.

1.0.3 adds the project's default network to every container, even to one with
`network_mode: host`, and podman then refuses the container ("cannot set
multiple networks without bridge network mode"). Later podman-compose releases
skip the networks of a container that has a network_mode; this shim applies
the same rule and then runs podman-compose unchanged. Used by
deploy/compose-test.sh; with Docker or a newer podman-compose it is not needed.
"""
import sys

sys.path.insert(0, "/usr/lib/python3/dist-packages")
import podman_compose as pc  # noqa: E402

if hasattr(pc, "get_net_args") and hasattr(pc, "assert_cnt_nets"):
    _net_args = pc.get_net_args
    _assert_nets = pc.assert_cnt_nets

    def get_net_args(compose, cnt):
        if cnt.get("network_mode"):
            return []
        return _net_args(compose, cnt)

    def assert_cnt_nets(compose, cnt):
        if cnt.get("network_mode"):
            return None
        return _assert_nets(compose, cnt)

    pc.get_net_args = get_net_args
    pc.assert_cnt_nets = assert_cnt_nets

sys.exit(pc.main())
