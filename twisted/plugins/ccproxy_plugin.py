"""twistd plugin: ``twistd ccproxy`` runs the proxy (see L{ccproxy.tap}).

Kept tiny and lazy: the plugin cache imports this file on every twistd run, so it names
the real module instead of importing it.
"""

from twisted.application.service import ServiceMaker

ccproxy = ServiceMaker(
    "ccproxy",
    "ccproxy.tap",
    "Anthropic Messages API proxy for OpenAI-compatible providers.",
    "ccproxy",
)
