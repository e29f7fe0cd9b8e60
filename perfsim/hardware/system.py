"""Systems: `count` members (chips or smaller systems) joined by one interconnect, nested freely.

An 8-GPU node is a System of 8 chips; a cluster is a System of nodes. `chips`
counts chips through every level, the unit of every `*_per_device` figure.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_serializer

from perfsim.hardware.common import Calibrated, Count, Fraction, Name, Price, Source, Spec
from perfsim.units import BytesPerSecond, Seconds

Topology = Literal["ring", "switch", "full_mesh", "mesh2d", "rails"]


class LinkCalibration(Spec):
    """Measured link behaviour: per-message latency (alpha) and achievable bandwidth fraction."""

    latency: Calibrated[Seconds] | None = None
    bandwidth_efficiency: Calibrated[Fraction] | None = None


class Interconnect(Spec):
    """How the members talk: each member has `links_per_member` links, each `bandwidth_per_direction`.

    ring: neighbours only; switch: every member reaches a switch; full_mesh: a direct
    link to every peer; mesh2d: a 2-D grid; rails: member i of every node on rail i.
    """

    name: Name
    topology: Topology
    bandwidth_per_direction: BytesPerSecond
    links_per_member: Count = 1
    latency: Seconds
    calibration: LinkCalibration = LinkCalibration()
    source: Source


class System(Spec):
    """`count` × `member` joined by `interconnect`; `member` is a device or another system."""

    name: Name
    kind: Literal["system"]
    description: str
    member: Annotated[Device | System, Field(discriminator="kind")]
    count: Count
    interconnect: Interconnect
    price: Price | None = None

    @field_serializer("member")
    def _member_name(self, member: Device | System) -> str:
        return member.name

    @property
    def chips(self) -> int:
        return self.count * self.member.chips

    @property
    def device(self) -> Device:
        """The chip this system is built of."""
        return self.member if not isinstance(self.member, System) else self.member.device

    @property
    def interconnects(self) -> list[tuple[Interconnect, int]]:
        """(interconnect, members it joins), innermost first."""
        inner = self.member.interconnects if isinstance(self.member, System) else []
        return [*inner, (self.interconnect, self.count)]


from perfsim.hardware.device import Device  # noqa: E402  (Device is defined after System's fields)

System.model_rebuild()
