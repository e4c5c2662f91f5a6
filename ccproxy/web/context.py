"""What every resource and exchange shares: settings, routing, provider, upstream, clock."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen

from ccproxy.adapt import LearnedFixes
from ccproxy.config import Settings
from ccproxy.convert.walks import WalkMemo
from ccproxy.logs import Stats
from ccproxy.parts import RequestParts
from ccproxy.providers import Profile
from ccproxy.routing import Router
from ccproxy.tokens import TokenCounter
from ccproxy.upstream import Upstream

__all__ = ["Context"]


@frozen
class Context:
    """The collaborators of one running proxy (one per service, never global).

    @ivar clock: the reactor (or a C{task.Clock} in tests) for timers and timestamps.
    @ivar tokens: the input-token counter (estimator, or o200k_base when configured).
    @ivar learned: request fixes learned from upstream 400s, per (base URL, model).
    @ivar exchanges: the exchanges running now, so shutdown can drain them.
    @ivar parts: validated messages and tools remembered across requests (see L{ccproxy.parts}).
    @ivar walks: where each conversation's message walk ended (see L{ccproxy.convert.walks}).
    """

    settings: Settings
    router: Router
    profile: Profile
    upstream: Upstream
    clock: Any
    stats: Stats
    tokens: TokenCounter = field(factory=TokenCounter)
    learned: LearnedFixes = field(factory=LearnedFixes)
    exchanges: set[Any] = field(factory=set)
    parts: RequestParts = field(factory=RequestParts)
    walks: WalkMemo = field(factory=WalkMemo)
