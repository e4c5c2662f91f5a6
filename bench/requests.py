"""The benchmark's request bodies: a realistic ~48 KB Claude Code turn, built deterministically.

The shape follows what Claude Code sends on a tool loop (tests/CLAUDE_CLI_NOTES.md): 12 tools
with JSON schemas, 3 system blocks (the first is the C{x-anthropic-billing-header:} line),
adaptive thinking, C{context_management}, C{output_config} and C{metadata}, then a few turns
of C{tool_use}/C{tool_result} with code and command output in the results. Every byte is
derived from constants here, so two runs (and two machines) send the same bodies.

The model name is how the benchmark talks to the fake upstream: ccproxy passes a name without
C{opus}/C{sonnet}/C{haiku} through unchanged, and C{bench/fake_upstream.py} reads the answer's
shape from it (C{bench-chunks-500}, C{bench-slow-1s}).

L{openai_body} rebuilds, with ccproxy's own conversion code, the very bytes ccproxy sends
upstream for the same Anthropic request. (The runner takes the "direct" bodies from the fake
upstream after ccproxy has sent them, and uses this only as a fallback.)
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "ANTHROPIC_HEADERS",
    "claude_code_request",
    "anthropic_body",
    "openai_body",
    "small_request",
]

# Headers Claude Code sends on every /v1/messages call (CLAUDE_CLI_NOTES.md), minus the
# session id; the proxy ignores them, but they are part of what it has to parse.
ANTHROPIC_HEADERS: dict[str, str] = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "Authorization": "Bearer bench",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": (
        "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
        "fine-grained-tool-streaming-2025-05-14"
    ),
    "x-app": "cli",
    "User-Agent": "claude-cli/2.1.328 (external, sdk-cli)",
    "X-Stainless-Retry-Count": "0",
    "X-Stainless-Timeout": "600",
}

_SESSION = "0b7c6a52-4e1f-4d0e-9a43-5c2f0d6b8e11"
_PROJECT = "/home/dev/projects/ccproxy"

# -- prose -------------------------------------------------------------------------------

_GUIDANCE = [
    "Prefer the dedicated tool over a shell command when one exists for the job",
    "Read a file before you edit it, and keep edits as small as the change allows",
    "Quote paths that contain spaces with double quotes",
    "Never commit, push or rewrite history unless the user asks for it explicitly",
    "Run independent commands in parallel by sending several tool calls in one message",
    "Use absolute paths; the working directory may differ between calls",
    "Keep output short: long results are truncated after 30000 characters",
    "When a command fails, read the error before trying something different",
    "Do not create documentation files unless the user asks for them",
    "Match the style, naming and imports of the surrounding code",
    "Check that a library is already used in the project before relying on it",
    "Explain destructive commands before running them and prefer reversible ones",
]


def _notes(seed: int, count: int) -> str:
    """C{count} usage-note bullets, chosen deterministically from L{_GUIDANCE}."""
    lines = []
    for i in range(count):
        text = _GUIDANCE[(seed * 7 + i * 5) % len(_GUIDANCE)]
        lines.append(f" - {text} (note {seed}.{i + 1}).")
    return "\n".join(lines)


def _description(intro: str, seed: int, notes: int) -> str:
    return f"{intro}\n\nUsage notes:\n{_notes(seed, notes)}"


# -- tools -------------------------------------------------------------------------------


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    }


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _tools() -> list[dict[str, Any]]:
    todo_item = {
        "type": "object",
        "properties": {
            "content": {"type": "string", "minLength": 1},
            "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
            "activeForm": {"type": "string", "minLength": 1},
        },
        "required": ["content", "status", "activeForm"],
        "additionalProperties": False,
    }
    specs: list[tuple[str, str, int, dict[str, Any], list[str]]] = [
        (
            "Bash",
            "Executes a given bash command in a persistent shell session with optional timeout, "
            "ensuring proper handling and security measures. Before executing the command, verify "
            "that the parent directory exists, quote paths with spaces, and capture the output. "
            "Commands time out after 120000ms unless a timeout of up to 600000ms is given. "
            "When creating a commit: run git status, git diff and git log in parallel, draft a "
            "concise message that focuses on why rather than what, and never skip hooks.",
            28,
            {
                "command": _string("The command to execute"),
                "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
                "description": _string(
                    "Clear, concise description of what this command does in 5-10 words, in active voice."
                ),
                "run_in_background": {
                    "type": "boolean",
                    "description": "Set to true to run this command in the background. Use BashOutput to read the output later.",
                },
            },
            ["command"],
        ),
        (
            "Read",
            "Reads a file from the local filesystem. You can access any file directly by using this "
            "tool. The file_path parameter must be an absolute path, not a relative path. By default, "
            "it reads up to 2000 lines starting from the beginning of the file; results are returned "
            "using cat -n format, with line numbers starting at 1. This tool can read images, PDFs "
            "and Jupyter notebooks.",
            10,
            {
                "file_path": _string("The absolute path to the file to read"),
                "offset": {"type": "number", "description": "The line number to start reading from"},
                "limit": {"type": "number", "description": "The number of lines to read"},
            },
            ["file_path"],
        ),
        (
            "Edit",
            "Performs exact string replacements in files. You must use your Read tool at least once "
            "in the conversation before editing. When editing text from Read tool output, preserve "
            "the exact indentation (tabs/spaces) as it appears after the line number prefix. The edit "
            "will FAIL if old_string is not unique in the file; provide a larger string with more "
            "surrounding context or use replace_all.",
            9,
            {
                "file_path": _string("The absolute path to the file to modify"),
                "old_string": _string("The text to replace"),
                "new_string": _string("The text to replace it with (must be different from old_string)"),
                "replace_all": {
                    "type": "boolean",
                    "default": False,
                    "description": "Replace all occurences of old_string (default false)",
                },
            },
            ["file_path", "old_string", "new_string"],
        ),
        (
            "Write",
            "Writes a file to the local filesystem. This tool will overwrite the existing file if "
            "there is one at the provided path. If this is an existing file, you MUST use the Read "
            "tool first to read the file's contents.",
            6,
            {
                "file_path": _string("The absolute path to the file to write (must be absolute, not relative)"),
                "content": _string("The content to write to the file"),
            },
            ["file_path", "content"],
        ),
        (
            "Glob",
            "Fast file pattern matching tool that works with any codebase size. Supports glob patterns "
            "like **/*.js or src/**/*.ts and returns matching file paths sorted by modification time.",
            5,
            {
                "pattern": _string("The glob pattern to match files against"),
                "path": _string(
                    "The directory to search in. If not specified, the current working directory will be used."
                ),
            },
            ["pattern"],
        ),
        (
            "Grep",
            "A powerful search tool built on ripgrep. Supports full regex syntax, filtering files "
            "with the glob or type parameters, and output modes content, files_with_matches and "
            "count. Pattern syntax follows ripgrep: literal braces need escaping.",
            8,
            {
                "pattern": _string("The regular expression pattern to search for in file contents"),
                "path": _string("File or directory to search in (rg PATH). Defaults to current working directory."),
                "glob": _string('Glob pattern to filter files (e.g. "*.js", "*.{ts,tsx}") - maps to rg --glob'),
                "output_mode": {
                    "type": "string",
                    "enum": ["content", "files_with_matches", "count"],
                    "description": 'Output mode. Defaults to "files_with_matches".',
                },
                "-B": {"type": "number", "description": "Number of lines to show before each match (rg -B)."},
                "-A": {"type": "number", "description": "Number of lines to show after each match (rg -A)."},
                "-C": {"type": "number", "description": "Number of lines to show before and after each match."},
                "-n": {"type": "boolean", "description": "Show line numbers in output (rg -n)."},
                "-i": {"type": "boolean", "description": "Case insensitive search (rg -i)"},
                "type": _string("File type to search (rg --type). Common types: js, py, rust, go, java."),
                "head_limit": {"type": "number", "description": "Limit output to first N lines/entries."},
                "multiline": {"type": "boolean", "description": "Enable multiline mode (rg -U --multiline-dotall)."},
            },
            ["pattern"],
        ),
        (
            "Task",
            "Launch a new agent to handle complex, multi-step tasks autonomously. Available agent "
            "types: general-purpose (researching complex questions, searching for code, executing "
            "multi-step tasks), statusline-setup and output-style-setup. Launch multiple agents "
            "concurrently whenever possible; each invocation is stateless and returns one final "
            "message.",
            12,
            {
                "description": _string("A short (3-5 word) description of the task"),
                "prompt": _string("The task for the agent to perform"),
                "subagent_type": _string("The type of specialized agent to use for this task"),
            },
            ["description", "prompt", "subagent_type"],
        ),
        (
            "WebFetch",
            "Fetches content from a specified URL and processes it using an AI model. Takes a URL "
            "and a prompt as input, fetches the URL content, converts HTML to markdown and answers "
            "the prompt about it. Includes a self-cleaning 15-minute cache.",
            7,
            {
                "url": {"type": "string", "format": "uri", "description": "The URL to fetch content from"},
                "prompt": _string("The prompt to run on the fetched content"),
            },
            ["url", "prompt"],
        ),
        (
            "TodoWrite",
            "Use this tool to create and manage a structured task list for your current coding "
            "session. This helps you track progress, organize complex tasks, and demonstrate "
            "thoroughness to the user. Mark tasks in_progress before beginning work and completed "
            "immediately after finishing; exactly one task should be in progress at any time.",
            16,
            {"todos": {"type": "array", "items": todo_item, "description": "The updated todo list"}},
            ["todos"],
        ),
        (
            "NotebookEdit",
            "Completely replaces the contents of a specific cell in a Jupyter notebook (.ipynb file) "
            "with new source. The notebook_path parameter must be an absolute path; cell_id selects "
            "the cell; edit_mode insert adds a new cell and delete removes one.",
            5,
            {
                "notebook_path": _string("The absolute path to the Jupyter notebook file to edit"),
                "cell_id": _string("The ID of the cell to edit."),
                "new_source": _string("The new source for the cell"),
                "cell_type": {"type": "string", "enum": ["code", "markdown"]},
                "edit_mode": {"type": "string", "enum": ["replace", "insert", "delete"]},
            },
            ["notebook_path", "new_source"],
        ),
        (
            "ToolSearch",
            "Searches the deferred tools (MCP servers and rarely used built-ins) by keyword and loads "
            "the matching ones into this conversation, so their schemas become available on the next "
            "turn.",
            4,
            {
                "query": _string("Keywords describing the capability you need"),
                "max_results": {"type": "integer", "minimum": 1, "maximum": 20},
            },
            ["query"],
        ),
        (
            "Skill",
            "Execute a skill within the main conversation. Skills provide specialized capabilities "
            "and domain knowledge; invoke one by name when the user's task matches its description. "
            "Available skills are listed in the system reminder of the first user message.",
            6,
            {"command": _string('The skill name (no arguments). E.g., "pdf" or "xlsx"')},
            ["command"],
        ),
    ]
    return [
        {
            "name": name,
            "description": _description(intro, seed, notes),
            "input_schema": _schema(properties, required),
        }
        for seed, (name, intro, notes, properties, required) in enumerate(specs, start=1)
    ]


# -- system and conversation ---------------------------------------------------------------


def _system() -> list[dict[str, Any]]:
    sections = []
    for i, title in enumerate(
        ["Tone and style", "Proactiveness", "Following conventions", "Code style", "Task management",
         "Doing tasks", "Tool usage policy", "Code references"],
        start=1,
    ):
        sections.append(f"# {title}\n{_notes(i + 20, 9)}")
    main = (
        "You are an interactive CLI tool that helps users with software engineering tasks. Use the "
        "instructions below and the tools available to you to assist the user.\n\n"
        "IMPORTANT: Assist with defensive security tasks only.\n\n"
        + "\n\n".join(sections)
        + f"\n\n<env>\nWorking directory: {_PROJECT}\nIs directory a git repo: Yes\nPlatform: linux\n"
        "OS Version: Linux 6.1.0-bench\nToday's date: 2026-01-15\n</env>\n"
        "You are powered by the model named Opus 5.5."
    )
    return [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.328.a1f; cc_entrypoint=cli; cch=00000;"},
        {
            "type": "text",
            "text": "You are Claude Code, Anthropic's official CLI for Claude.",
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "text", "text": main, "cache_control": {"type": "ephemeral"}},
    ]


def _code(functions: int) -> str:
    """A deterministic Python module, numbered like the Read tool's output."""
    lines = [
        '"""The relay: upstream body protocol and client push producer in one object."""',
        "",
        "from __future__ import annotations",
        "",
        "import json",
        "from typing import Any",
        "",
    ]
    for i in range(functions):
        name = ["feed", "flush", "emit", "close", "pause", "resume", "cancel", "finish"][i % 8]
        lines += [
            "",
            f"def _{name}_{i}(state: dict[str, Any], chunk: bytes, *, limit: int = {1024 * (i + 1)}) -> list[str]:",
            f'    """Handle one {name} step ({i}) and return the events it completes."""',
            "    events: list[str] = []",
            "    buffered = state.setdefault(\"pending\", b\"\") + chunk",
            "    if len(buffered) > limit:",
            f"        raise ValueError(\"{name} step {i}: event exceeds {{limit}} bytes\")",
            "    for line in buffered.split(b\"\\n\"):",
            "        if line.startswith(b\"data: \"):",
            "            events.append(json.loads(line[6:])[\"choices\"][0][\"delta\"].get(\"content\", \"\"))",
            "    state[\"pending\"] = b\"\"",
            "    return events",
        ]
    return "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(lines, start=1))


_PYTEST_OUTPUT = "\n".join(
    [
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-8.3.4, pluggy-1.5.0",
        f"rootdir: {_PROJECT}",
        "configfile: setup.cfg",
        "plugins: twisted-1.14.3, timeout-2.3.1, hypothesis-6.122.3",
        "collected 148 items",
        "",
    ]
    + [
        f"tests/web/test_integration.py::test_relay_case_{i:03d} PASSED{' ' * (40 - len(str(i)))}[{(i * 100) // 48:3d}%]"
        for i in range(1, 49)
    ]
    + ["", "============================= 148 passed in 6.42s =============================="]
)


def _messages() -> list[dict[str, Any]]:
    read_id, grep_id, edit_id, bash_id = (f"toolu_01Bench{n}xYz{n * 7}AbCdEfGh" for n in range(1, 5))
    relay = f"{_PROJECT}/ccproxy/web/streaming.py"
    reminder = (
        "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n"
        "# claudeMd\nCodebase and user instructions are shown below.\n\n"
        f"Contents of {_PROJECT}/CLAUDE.md (project instructions, checked into the codebase):\n\n"
        + _notes(40, 14)
        + "\n</system-reminder>"
    )
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": reminder},
                {
                    "type": "text",
                    "text": "The SSE relay sometimes drops the last event when the upstream closes early. "
                    "Find the cause, fix it, and run the web tests.",
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "I'll search for where the relay handles the end of the upstream body."},
                {
                    "type": "tool_use",
                    "id": grep_id,
                    "name": "Grep",
                    "input": {"pattern": "def connectionLost", "path": f"{_PROJECT}/ccproxy", "output_mode": "content", "-n": True},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": grep_id,
                    "content": f"{relay}:187:    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:\n"
                    f"{_PROJECT}/ccproxy/web/exchange.py:57:    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:",
                }
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": read_id, "name": "Read", "input": {"file_path": relay}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": read_id, "content": _code(16)}],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "text",
                    "text": "The pending bytes are dropped when the body ends without a blank line. "
                    "I'll flush the parser before finishing.",
                },
                {
                    "type": "tool_use",
                    "id": edit_id,
                    "name": "Edit",
                    "input": {
                        "file_path": relay,
                        "old_string": '    state["pending"] = b""\n    return events',
                        "new_string": '    state["pending"] = b""\n    events.extend(_flush_1(state, b"\\n\\n"))\n    return events',
                    },
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": edit_id,
                    "content": f"The file {relay} has been updated. Here's the result of running `cat -n` on a snippet "
                    "of the edited file:\n" + _code(1),
                }
            ],
        },
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": bash_id,
                    "name": "Bash",
                    "input": {"command": ".venv/bin/python -m pytest -q tests/web", "description": "Run the web tests"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": bash_id,
                    "content": _PYTEST_OUTPUT,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]


def claude_code_request(model: str, *, stream: bool, max_tokens: int = 32000) -> dict[str, Any]:
    """The realistic Claude Code request (about 48 KB as JSON), for C{model}."""
    return {
        "model": model,
        "messages": _messages(),
        "system": _system(),
        "tools": _tools(),
        "metadata": {
            "user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": _SESSION})
        },
        "max_tokens": max_tokens,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "stream": stream,
    }


def long_request(model: str, *, stream: bool, turns: int) -> dict[str, Any]:
    """L{claude_code_request} later in its session: C{turns} more rounds of its tool turns (the
    messages between the first prompt and the last result, each round with its own tool ids)
    before its last message. 40 rounds make 289 messages, about 600 KB."""
    body = claude_code_request(model, stream=stream)
    first, *middle, last = body["messages"]
    rounds = [json.loads(json.dumps(middle).replace('"toolu_01Bench', f'"toolu_{turn:03d}Bench')) for turn in range(turns)]
    body["messages"] = [first, *middle, *(message for messages in rounds for message in messages), last]
    return body


def session_bodies(model: str, turns: int) -> list[tuple[bytes, bytes]]:
    """A Claude Code session's non-streaming requests, as ccproxy gets them and as it sends them
    upstream: L{claude_code_request}, then C{turns} more tool turns, each request resending the
    one before plus a turn. Claude Code marks the last message of each request for prompt
    caching, so the mark moves with every turn."""
    from ccproxy.convert.request import convert_request
    from ccproxy.openai import to_json
    from ccproxy.providers import profile_for
    from ccproxy.validation import parse_messages_request

    profile = profile_for("http://127.0.0.1:1/v1")
    body = claude_code_request(model, stream=False)
    bodies = []
    for turn in range(turns + 1):
        if turn:
            call_id = f"toolu_{turn:03d}SessionTurn"
            call = {"type": "tool_use", "id": call_id, "name": "Bash", "input": {"command": f"pytest -x -q -k case_{turn}"}}
            result = {"type": "tool_result", "tool_use_id": call_id, "content": f"{turn} passed in 0.{turn:02d}s"}
            body["messages"] += [
                {"role": "assistant", "content": [{"type": "text", "text": f"Running case {turn}."}, call]},
                {"role": "user", "content": [result]},
            ]
        sent = json.loads(json.dumps(body))
        last = sent["messages"][-1]["content"][-1]
        last["cache_control"] = {"type": "ephemeral"}
        anthropic = _encode(sent)
        bodies.append((anthropic, to_json(convert_request(parse_messages_request(sent), model, profile).request)))
    return bodies


def small_request(model: str, *, stream: bool) -> dict[str, Any]:
    """A minimal request (one short user message, no tools), to isolate per-chunk costs."""
    return {
        "model": model,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": stream,
    }


def _encode(body: dict[str, Any]) -> bytes:
    # Compact separators, like the JavaScript SDK's JSON.stringify.
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def anthropic_body(model: str, *, stream: bool, small: bool = False, turns: int = 0) -> bytes:
    """The encoded Anthropic request for the proxy (with C{turns}: L{long_request})."""
    if small:
        return _encode(small_request(model, stream=stream))
    if turns:
        return _encode(long_request(model, stream=stream, turns=turns))
    return _encode(claude_code_request(model, stream=stream))


def openai_body(model: str, *, stream: bool, small: bool = False) -> bytes:
    """The Chat Completions body ccproxy sends upstream for L{anthropic_body} (the "direct" body).

    Built with ccproxy's own parser and converter for the provider profile of a local base URL,
    so the fake upstream receives exactly the same bytes from both columns. (ccproxy always
    streams from the upstream, so the body always has C{stream: true}, whatever C{stream} is.)
    """
    from ccproxy.config import Settings
    from ccproxy.convert.request import convert_request
    from ccproxy.openai import to_json
    from ccproxy.providers import profile_for
    from ccproxy.routing import Router
    from ccproxy.validation import parse_messages_request

    settings = Settings(openai_base_url="http://127.0.0.1:1/v1")
    parsed = parse_messages_request(json.loads(anthropic_body(model, stream=stream, small=small)))
    upstream_model = Router.from_settings(settings).resolve(parsed.model)
    return to_json(convert_request(parsed, upstream_model, profile_for(settings.openai_base_url)).request)


if __name__ == "__main__":
    for label, data in (
        ("anthropic", anthropic_body("bench-chunks-10", stream=False)),
        ("openai", openai_body("bench-chunks-10", stream=False)),
    ):
        print(f"{label}: {len(data)} bytes")
