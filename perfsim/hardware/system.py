"""Systems: `count` members (chips or smaller systems) joined by one interconnect, nested freely.

An 8-GPU node is a System of 8 chips; a cluster is a System of nodes. `chips`
counts chips through every level, the unit of every `*_per_device` figure.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_serializer, model_validator

from perfsim.errors import PerfsimError
from perfsim.hardware.common import (
    Calibrated,
    Count,
    DeviceBase,
    Fraction,
    LinkPort,
    Name,
    Price,
    Source,
    Spec,
    Topology,
)
from perfsim.units import BytesPerSecond, Seconds


class LinkCalibration(Spec):
    """Measured link behaviour: per-message latency (alpha) and achievable bandwidth fraction."""

    latency: Calibrated[Seconds] | None = None
    bandwidth_efficiency: Calibrated[Fraction] | None = None


class InNetworkReduction(Spec):
    """The switch reduces in the network (NVLink SHARP / NVLS): a rank sends its buffer once and gets the sum back.

    `latency` is the whole in-switch reduction's fixed time; `calibration` its measured latency and
    bandwidth efficiency, apart from the link's ring calibration.
    """

    latency: Seconds
    calibration: LinkCalibration = LinkCalibration()
    source: Source


class Interconnect(Spec):
    """How the members talk: each member has `links_per_member` links, each `bandwidth_per_direction`.

    ring: neighbours only; switch: every member reaches a switch; full_mesh: a direct
    link to every peer; mesh2d: a 2-D grid; rails: member i of every node on rail i (rails-only:
    no path between rails); fat_tree: every chip's NIC reaches every other node at full bisection.
    rails and fat_tree are networks (scale-out, NCCL's NET latencies); the rest join chips directly.
    `latency` is one step of the lowest-latency protocol (NCCL's LL) on this link.
    """

    name: Name
    topology: Literal[Topology, "fat_tree"]
    bandwidth_per_direction: BytesPerSecond
    links_per_member: Count = 1
    latency: Seconds
    calibration: LinkCalibration = LinkCalibration()
    in_network_reduction: InNetworkReduction | None = None
    source: Source

    @property
    def network(self) -> bool:
        """Whether this is a scale-out network, each chip driving its own NIC."""
        return self.topology in ("rails", "fat_tree")


class System(Spec):
    """`count` × `member` joined by `interconnect`; `member` is a device or another system.

    `host`: the CPU (one socket, `host_sockets` of them) whose DRAM can hold weights and KV cache that the
    chips reach over their link `host_link` (a PCIe port the chip declares): the offloaded serving of
    perfsim.offload. Absent on systems whose chips hold everything themselves.
    """

    name: Name
    kind: Literal["system"]
    description: str
    member: Annotated[Device | System, Field(discriminator="kind")]
    count: Count
    interconnect: Interconnect
    price: Price | None = None
    host: Cpu | None = Field(None, description="the host CPU spec (one socket) whose DRAM the chips reach")
    host_sockets: Count = Field(1, description="sockets of `host` in the machine, their DRAM pooled")
    host_link: Name | None = Field(None, description="the chip's link (one of its `links`) to the host")

    @field_serializer("member", "host")
    def _member_name(self, member: Device | System | None) -> str | None:
        return None if member is None else member.name

    @model_validator(mode="after")
    def _host_link(self) -> System:
        if (self.host is None) != (self.host_link is None):
            raise ValueError("give 'host' together with 'host_link' (the chip's link to it)")
        if self.host_link is not None and self.host_link not in (names := [p.name for p in self.device.links]):
            raise ValueError(f"host_link '{self.host_link}' is not a link of {self.device.name} "
                             f"(links: {', '.join(names) or 'none'})")
        return self

    @model_validator(mode="after")
    def _links_exist(self) -> System:
        """A chip cannot join a direct interconnect over more links than its largest port kind has."""
        if self.interconnect.network or not isinstance(self.member, DeviceBase) or not self.member.links:
            return self
        most = max(self.member.links, key=lambda port: port.count)
        if self.interconnect.links_per_member > most.count:
            ports = ", ".join(f"{port.name} × {port.count}" for port in self.member.links)
            raise ValueError(f"interconnect.links_per_member: {self.interconnect.links_per_member} links, but "
                             f"{self.member.name} has at most {most.count} of one kind ({ports})")
        return self

    @property
    def host_port(self) -> LinkPort | None:
        """The chip's port to the host (None without a host)."""
        return next((p for p in self.device.links if p.name == self.host_link), None)

    @property
    def chips(self) -> int:
        return self.count * self.member.chips

    @property
    def device(self) -> Device:
        """The chip this system is built of."""
        return self.member.device

    @property
    def interconnects(self) -> list[tuple[Interconnect, int]]:
        """(interconnect, members it joins), innermost first."""
        inner = self.member.interconnects if isinstance(self.member, System) else []
        return [*inner, (self.interconnect, self.count)]


def join(chip: Device, count: int) -> System:
    """`count` chips joined over the chip's first declared link, in that link's topology.

    Raise PerfsimError if the chip declares no links, its first link has no latency, or a full
    mesh of `count` chips needs more links per chip than it has.
    """
    if not chip.links:
        raise PerfsimError(f"{chip.name} declares no chip-to-chip links; use a system spec for {count} devices")
    link = chip.links[0]
    if link.latency is None:
        raise PerfsimError(f"{chip.name}: links[0].latency is needed to join {count} chips over {link.name}")
    if link.topology == "full_mesh" and count - 1 > link.count:
        raise PerfsimError(f"{chip.name}: a full mesh of {count} chips needs {count - 1} {link.name} links per chip; "
                           f"it has {link.count} (use a system spec, e.g. a cluster of nodes)")
    interconnect = Interconnect(name=link.name, topology=link.topology,
                                bandwidth_per_direction=link.bandwidth_per_direction, links_per_member=link.count,
                                latency=link.latency, source=link.source)
    return System(name=f"{chip.name}-x{count}", kind="system", description=f"{count} × {chip.name}",
                  member=chip, count=count, interconnect=interconnect)


from perfsim.hardware.cpu import Cpu  # noqa: E402  (resolves System.host when its schema is built)
from perfsim.hardware.device import Device  # noqa: E402  (resolves System.member when its schema is built)
