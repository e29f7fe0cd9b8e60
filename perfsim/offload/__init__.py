"""Offloaded MoE serving (MoE-Lens): weights and KV cache in host memory, experts streamed over PCIe, decode
attention on the CPU; the analytical throughput bound and a discrete-event simulation against it."""
