"""Requests longer than a replica can hold: dropped or clipped by policy and counted; a run that would drop every
request is an error (it would report nothing).

A request fits when prompt + output ≤ the limit (the model's max_context, and the KV cache a replica can give one
sequence). `drop` refuses it, as vLLM answers a prompt beyond max_model_len with an error and serves on; `clip`
keeps its output and truncates its prompt to the limit left (its oldest tokens go, as a chat client trims
history; at least one prompt token stays, the output shrinking if it alone is too long); `error` stops the run at
the first one (the behaviour before policies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from perfsim.errors import PerfsimError
from perfsim.serving.arrivals import Request

CONTEXT_POLICIES = ("drop", "clip", "error")


@dataclass
class ContextLimit:
    """The most tokens (prompt + output) a request may have, what sets it, the policy, and the counts so far."""

    limit: int
    what: str
    policy: str = "drop"
    dropped: int = 0
    clipped: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.policy not in CONTEXT_POLICIES:
            raise PerfsimError(f"--context-policy: '{self.policy}' is not one of {', '.join(CONTEXT_POLICIES)}")
        if self.limit < 2:
            raise PerfsimError(f"{self.what} leaves room for {self.limit} token(s); a request needs 2")

    def __call__(self, requests: Iterator[Request]) -> Iterator[Request]:
        for request in requests:
            self.seen += 1
            total = request.prompt_len + request.output_len
            if total <= self.limit:
                yield request
            elif self.policy == "drop":
                self.dropped += 1
            elif self.policy == "clip":
                self.clipped += 1
                prompt = max(1, self.limit - request.output_len)
                yield replace(request, prompt_len=prompt, output_len=self.limit - prompt,
                              prefix_len=min(request.prefix_len, prompt))
            else:
                raise PerfsimError(f"request {request.id}: {request.prompt_len} + {request.output_len} tokens exceed "
                                   f"{self.what}")

    def check_served(self) -> None:
        """Raise PerfsimError when every request was dropped: such a run would report nothing but zeros."""
        if self.seen and self.dropped == self.seen:
            raise PerfsimError(f"all {self.seen} requests (prompt + output tokens) exceed {self.what}: nothing to "
                               "serve (shorten them, or --context-policy clip to truncate their prompts)")
