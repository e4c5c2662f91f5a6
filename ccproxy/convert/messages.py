"""The message walk of request conversion (PROTOCOL.md H.2).

OpenAI validates what Anthropic does not: every assistant C{tool_calls} id must be
answered by a C{tool} message right after it, tool messages carry text only, and system
text cannot sit between a call and its results. This module turns an Anthropic
conversation into a list that obeys those rules without losing anything: results are
reordered to match their calls, missing results are synthesised, orphan results become
user text, images and PDFs from tool results move into a user message after the tool
messages. What OpenAI cannot take is dropped: an assistant turn with nothing but
thinking, blank text; a conversation left with no user or assistant message gets one.

The walk goes message by message and only appends to what it emitted (system text folded
into a user message replaces the last one), so a request that resends a conversation
resumes where the walk of its previous turn stopped
(L{ccproxy.convert.walks}); on the way it notes the tool names the messages mention, which
the request's conversion needs.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import define, field, frozen

from ccproxy.anthropic import (
    Block,
    DocumentBlock,
    ImageBlock,
    Message,
    MidConvSystemBlock,
    SearchResultBlock,
    TextBlock,
    ThinkingBlock,
    ToolReferenceBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from ccproxy.convert.arguments import dump_arguments
from ccproxy.convert.names import ToolIdMap, upstream_tool_name
from ccproxy.convert.replay import gather_reasoning, replay_reasoning
from ccproxy.convert.walks import KEEP, WalkMemo, WalkState
from ccproxy.models import model_info
from ccproxy.openai import (
    ChatMessage,
    ContentPart,
    FilePart,
    FunctionCall,
    ImagePart,
    TextPart,
    ToolCall,
)
from ccproxy.providers import Profile

__all__ = ["walk_messages", "Walked", "INTERRUPTED", "NO_OUTPUT", "EMPTY_CONVERSATION"]

INTERRUPTED = "[tool call was interrupted: no result]"
NO_OUTPUT = "(no output)"
IMAGE_BELOW = "[image attached below]"
DOCUMENT_BELOW = "[document attached below]"
EMPTY_CONVERSATION = "(empty message)"
IMAGE_OMITTED = "[image omitted: this provider does not read images]"


def _blocks(content: str | list[Block]) -> list[Block]:
    """Content as blocks, with empty text blocks dropped (Anthropic rejects them too)."""
    blocks: list[Block] = [TextBlock(content)] if isinstance(content, str) else content
    return [b for b in blocks if not (isinstance(b, TextBlock) and not b.text.strip())]


@define(eq=False)
class _Walk:
    """State of one conversion walk. See L{walk_messages}."""

    profile: Profile
    model: str
    ids: ToolIdMap
    cache: bool = False
    out: list[ChatMessage] = field(factory=list)
    # upstream ids of the last assistant's tool calls still waiting for a result
    awaiting: list[str] = field(factory=list)
    pending_system: list[str] = field(factory=list)
    # every tool name the messages mention (an ordered set), and the deferred tools they load
    names: dict[str, None] = field(factory=dict)
    loaded: set[str] = field(factory=set)

    # -- resuming (ccproxy.convert.walks) ------------------------------------------

    def state(self) -> WalkState:
        """Where the walk stands, to be remembered (taken before it closes the last tool turn)."""
        return WalkState(
            tuple(self.out),
            tuple(self.awaiting),
            tuple(self.pending_system),
            self.ids.learned(),
            tuple(self.names),
            frozenset(self.loaded),
        )

    def restore(self, state: WalkState) -> None:
        """Stand where C{state} was taken, as if its messages had been walked here."""
        self.out = list(state.out)
        self.awaiting = list(state.awaiting)
        self.pending_system = list(state.pending_system)
        self.ids.learn(state.upstream_ids)
        self.names = dict.fromkeys(state.names)
        self.loaded = set(state.loaded)

    def step(self, message: Message) -> None:
        """Walk one message."""
        self.note_tools(message.content)
        if message.role == "assistant":
            self.assistant(message.content)
        elif message.role == "user":
            self.user(message.content)
        else:
            self.system(message.content)
        if not isinstance(message.content, str):
            # The SDK's mid_conv_system block: a system message right after the one holding it.
            for block in message.content:
                if isinstance(block, MidConvSystemBlock) and block.content:
                    self.system(list(block.content) if isinstance(block.content, list) else block.content)

    def note_tools(self, content: str | list[Block]) -> None:
        """Note the tool names C{content} mentions, and the deferred tools it loads: those tool
        search answered with (C{tool_reference}, also inside tool results) or the model called."""
        if isinstance(content, str):
            return
        for block in content:
            name = getattr(block, "name", "")
            if name:
                self.names[name] = None
        blocks = list(content)
        for block in blocks:
            if isinstance(block, ToolResultBlock) and isinstance(block.content, list):
                blocks.extend(block.content)
            elif isinstance(block, ToolReferenceBlock):
                self.loaded.add(block.tool_name)
            elif isinstance(block, ToolUseBlock):
                self.loaded.add(block.name)

    # -- parts ---------------------------------------------------------------------

    def image_part(self, block: ImageBlock) -> ContentPart:
        source = block.source
        if not self.profile.images:
            return TextPart(IMAGE_OMITTED)
        known = model_info(self.model)
        if known is not None and not known.vision:
            return TextPart(f"[image omitted: {self.model} does not read images]")
        if source.get("type") == "base64":
            media = source.get("media_type", "image/png")
            return ImagePart({"url": f"data:{media};base64,{source.get('data', '')}"})
        url = str(source.get("url", ""))
        if self.profile.image_urls:
            return ImagePart({"url": url})
        return TextPart(f"[image omitted: this provider does not fetch image URLs: {url}]")

    def document_parts(self, block: DocumentBlock) -> list[ContentPart]:
        source = block.source
        kind = source.get("type")
        title = block.title or "document"
        if kind == "text":
            return [TextPart(str(source.get("data", "")))]
        if kind == "content":
            inner = source.get("content")
            if isinstance(inner, str):
                return [TextPart(inner)]
            texts = [b.get("text", "") for b in inner or [] if isinstance(b, dict)]
            return [TextPart("\n".join(str(t) for t in texts))]
        if kind == "base64" and source.get("media_type") == "application/pdf":
            if self.profile.pdf_files:
                data = f"data:application/pdf;base64,{source.get('data', '')}"
                filename = title if title.lower().endswith(".pdf") else f"{title}.pdf"
                return [FilePart({"filename": filename, "file_data": data})]
            return [TextPart(f"[PDF omitted: {title}: this provider does not read PDFs]")]
        if kind == "url":
            return [TextPart(f"[document: {title}: {source.get('url', '')}]")]
        return [TextPart(f"[document omitted: {title}]")]

    def user_parts(self, block: Block) -> list[ContentPart]:
        if isinstance(block, TextBlock):
            return [TextPart(block.text, cache_control=block.cache_control if self.cache else None)]
        if isinstance(block, ImageBlock):
            return [self.image_part(block)]
        if isinstance(block, DocumentBlock):
            return self.document_parts(block)
        if isinstance(block, SearchResultBlock):
            return [TextPart(_search_result_text(block))]
        if isinstance(block, ToolReferenceBlock):
            return [TextPart(f"Tool '{block.tool_name}' loaded.")]
        return []

    # -- emitting ------------------------------------------------------------------

    def close_tool_turn(self) -> None:
        """Answer every call still awaiting a result (the user interrupted the turn)."""
        for upstream_id in self.awaiting:
            self.out.append(ChatMessage("tool", INTERRUPTED, tool_call_id=upstream_id))
        self.awaiting = []
        self.flush_system()

    def flush_system(self) -> None:
        if self.pending_system and self.profile.mid_system == "inline":
            self.out.extend(ChatMessage("system", text) for text in self.pending_system)
            self.pending_system = []

    def emit_user(self, parts: list[ContentPart]) -> None:
        if self.pending_system:  # fold: system text goes first in the user message
            parts = [TextPart(_reminder(t)) for t in self.pending_system] + parts
            self.pending_system = []
        if not parts:
            return
        if all(isinstance(p, TextPart) and p.cache_control is None for p in parts):
            self.out.append(ChatMessage("user", "\n\n".join(p.text for p in parts)))  # type: ignore[union-attr]
        else:
            self.out.append(ChatMessage("user", parts))

    # -- roles ---------------------------------------------------------------------

    def system(self, content: str | list[Block]) -> None:
        texts = [b.text for b in _blocks(content) if isinstance(b, TextBlock)]
        if not texts:
            return
        self.pending_system.append("\n\n".join(texts))
        if self.awaiting:
            return  # never between a call and its results: placed after them
        if self.profile.mid_system == "inline":
            self.flush_system()
        elif self.out and self.out[-1].role == "user" and not self.awaiting:
            last = self.out.pop()
            self.pending_system, folded = [], self.pending_system
            self.out.append(_append_text(last, [_reminder(t) for t in folded]))

    def assistant(self, content: str | list[Block]) -> None:
        self.close_tool_turn()
        texts: list[str] = []
        calls: list[ToolCall] = []
        client_ids: list[str] = []
        thinking: list[ThinkingBlock] = []
        for block in _blocks(content):
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolUseBlock):
                upstream_id = self.ids.to_upstream(block.id)
                name = upstream_tool_name(block.name)
                calls.append(ToolCall(upstream_id, FunctionCall(name, dump_arguments(block.input))))
                client_ids.append(block.id)
            elif isinstance(block, ThinkingBlock):
                thinking.append(block)
            # redacted thinking and server-tool artefacts have no OpenAI form
        if not texts and not calls:
            return  # reasoning alone makes no message: OpenAI wants content or tool calls
        message = ChatMessage("assistant", "".join(texts) or None, calls or None)
        reasoning = gather_reasoning(thinking, self.profile, self.model)
        self.out.append(replay_reasoning(message, reasoning, self.profile, client_ids))
        self.awaiting = [call.id for call in calls]

    def user(self, content: str | list[Block]) -> None:
        blocks = _blocks(content)
        results = [b for b in blocks if isinstance(b, ToolResultBlock)]
        others = [b for b in blocks if not isinstance(b, ToolResultBlock)]
        parts: list[ContentPart] = []
        images: list[ContentPart] = []
        answered: dict[str, ChatMessage] = {}
        for result in results:
            upstream_id = self.ids.to_upstream(result.tool_use_id)
            text, result_images = self._result_content(result)
            if upstream_id in self.awaiting:
                if upstream_id not in answered:  # duplicates: the first one wins
                    answered[upstream_id] = ChatMessage("tool", text, tool_call_id=upstream_id)
                    images.extend(result_images)
            else:  # no call to answer: keep it as text so nothing is lost
                parts.append(TextPart(f"Tool result ({result.tool_use_id}): {text}"))
                parts.extend(result_images)
        for upstream_id in self.awaiting:
            self.out.append(
                answered.get(upstream_id) or ChatMessage("tool", INTERRUPTED, tool_call_id=upstream_id)
            )
        self.awaiting = []
        self.flush_system()
        if images:  # OpenAI allows images only in user messages: right after the results
            kind = "Images" if all(isinstance(p, ImagePart) for p in images) else "Attachments"
            parts = [TextPart(f"{kind} from the tool results above:"), *images, *parts]
        for block in others:
            parts.extend(self.user_parts(block))
        self.emit_user(parts)

    def _result_content(self, result: ToolResultBlock) -> tuple[str, list[ContentPart]]:
        texts: list[str] = []
        images: list[ContentPart] = []
        content = result.content
        if isinstance(content, str):
            texts.append(content)
        elif content:
            for block in content:
                for part in self.user_parts(block):
                    if isinstance(part, TextPart):
                        texts.append(part.text)
                    else:
                        texts.append(IMAGE_BELOW if isinstance(part, ImagePart) else DOCUMENT_BELOW)
                        images.append(part)
        text = "\n".join(t for t in texts if t) or NO_OUTPUT
        if result.is_error:
            text = "Error: " + text
        return text, images


def _search_result_text(block: SearchResultBlock) -> str:
    body = "\n".join(b.text for b in block.content)
    return f"[{block.title}]({block.source})\n{body}"


def _reminder(text: str) -> str:
    return f"<system-reminder>\n{text}\n</system-reminder>"


def _append_text(message: ChatMessage, texts: Sequence[str]) -> ChatMessage:
    content = message.content
    if isinstance(content, str):
        return ChatMessage("user", "\n\n".join([content, *texts]))
    parts = list(content or []) + [TextPart(t) for t in texts]
    return ChatMessage("user", parts)


@frozen
class Walked:
    """A conversation converted, with what the request's conversion needs to know of its tools.

    @ivar names: every tool name its messages mention, in order of first mention.
    @ivar loaded: the deferred tools it loaded (C{tool_reference}) or called.
    """

    messages: list[ChatMessage]
    names: tuple[str, ...]
    loaded: frozenset[str]


def walk_messages(
    messages: Sequence[Message],
    profile: Profile,
    model: str,
    ids: ToolIdMap,
    walks: WalkMemo | None = None,
) -> Walked:
    """Convert the conversation; see the module docstring for the rules.

    @param walks: where earlier conversations' walks ended; the walk resumes from the one whose
        messages start this conversation (L{ccproxy.convert.walks}), and leaves its own there.
    """
    walk = _Walk(profile, model, ids, cache=profile.cache_control(model))
    resumed = walks.resume(messages, model, profile) if walks is not None else None
    if resumed is not None:
        walk.restore(resumed.state)
    states: dict[int, WalkState] = {}
    for index in range(resumed.length if resumed is not None else 0, len(messages)):
        walk.step(messages[index])
        if walks is not None and index >= len(messages) - KEEP:
            states[index + 1] = walk.state()
    if walks is not None:
        walks.remember(messages, states, resumed, model, profile)
    walk.close_tool_turn()
    if walk.pending_system:
        walk.emit_user([])
    if all(message.role == "system" for message in walk.out):  # everything was blank
        walk.out.append(ChatMessage("user", EMPTY_CONVERSATION))
    return Walked(walk.out, tuple(walk.names), frozenset(walk.loaded))
