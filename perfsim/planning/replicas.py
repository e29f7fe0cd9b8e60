"""The hardware one replica of N chips runs on, as `serve` takes it (a spec name or path, and devices).

Within one server: the shipped system spec whose member is the chip (dgx-h100 for h100-sxm), N of its
chips; a chip without one joins N chips over its first declared link. Beyond one server (N a multiple of
the server's chips): the shipped cluster of that server (h100-cluster), else servers joined over the chip's
scale-out link (a link after its first, e.g. Ascend 910B's RoCE port), one port per chip into a non-blocking
fabric (topology fat_tree), written as a system YAML into a directory of this process's own (made on first
need, under the system's temporary directory, and left there) so that `serve` can load it by path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from perfsim.errors import PerfsimError
from perfsim.hardware import Device, System
from perfsim.hardware.system import Interconnect


@dataclass(frozen=True)
class ReplicaHardware:
    """`devices` chips of `ref` (a spec name or path): what one replica runs on."""

    ref: str
    devices: int
    spec: Device | System


@functools.cache
def systems_of(member: str) -> tuple[System, ...]:
    """The shipped (and search-path) system specs whose direct member is `member`, fewest chips first; a system
    with a host CPU (an offloading machine such as host-8380x2-a100) is no server to replicate a deployment on."""
    from perfsim.api import hardware, hardware_list

    found = [hardware(row["name"]) for row in hardware_list() if row["system"]]
    return tuple(sorted((s for s in found if isinstance(s, System) and s.member.name == member and s.host is None),
                        key=lambda s: s.chips))


def replica_hardware(chip: Device, chips: int, workdir: Path | None = None) -> ReplicaHardware:
    """Where a replica of `chips` chips runs; a system built over scale-out links is written into `workdir`
    (default: scaled_out_dir()). Raise PerfsimError if the chip has no way to join that many."""
    servers = systems_of(chip.name)
    if not servers:
        return ReplicaHardware(chip.name, chips, chip)
    server = servers[0]
    if chips <= server.chips:
        return ReplicaHardware(server.name, chips, server)
    if chips % server.chips:
        raise PerfsimError(f"{chips} chips are not whole {server.name} servers of {server.chips}")
    cluster = next((c for c in systems_of(server.name) if c.chips >= chips), None)
    if cluster is not None:
        return ReplicaHardware(cluster.name, chips, cluster)
    return _scaled_out(chip, server, chips // server.chips, workdir or scaled_out_dir())


@functools.cache
def scaled_out_dir() -> Path:
    """This process's directory for the system specs built over scale-out links."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="perfsim-systems-"))


def _scaled_out(chip: Device, server: System, count: int, workdir: Path) -> ReplicaHardware:
    """`count` servers over the chip's scale-out link, written to workdir/<server>-x<count>.yaml."""
    link = next((link for link in chip.links[1:] if link.latency is not None), None)
    if link is None:
        raise PerfsimError(f"{chip.name} declares no scale-out link with a latency (a link after its first), so "
                           f"{count} {server.name} servers cannot be joined; add a cluster system spec")
    fabric = Interconnect(name=link.name, topology="fat_tree", bandwidth_per_direction=link.bandwidth_per_direction,
                          links_per_member=link.count * server.chips, latency=link.latency, source=link.source)
    name = f"{server.name}-x{count}"
    data = {"name": name, "kind": "system", "description": f"{count} × {server.name} over {link.name}",
            "member": server.name, "count": count, "interconnect": fabric.model_dump(mode="json", exclude_none=True)}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    from perfsim.api import hardware

    return ReplicaHardware(str(path), count * server.chips, hardware(path))
