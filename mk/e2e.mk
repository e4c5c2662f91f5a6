# Claude Code CLI for the end-to-end tests (see tests/claude_cli.py, tests/CLAUDE_CLI_NOTES.md).
# Included by the top-level Makefile; paths are relative to the repository root. .e2e/ is git-ignored.

E2E_MK := $(lastword $(MAKEFILE_LIST))
# Defining targets here must not change the including Makefile's default goal (restored below).
_E2E_DEFAULT_GOAL := $(.DEFAULT_GOAL)
CLAUDE_CODE_VERSION := 2.1.328
E2E_DIR := .e2e
CLAUDE_BIN := $(E2E_DIR)/node_modules/.bin/claude

.PHONY: e2e-claude e2e-clean

e2e-claude: $(CLAUDE_BIN)

# Reinstalls only when this fragment (the pinned version) changes. The package's postinstall
# hard-links the native binary over a 500-byte shell stub; npm warns that the script is not
# "covered by allowScripts" but runs it. If scripts were skipped (ignore-scripts), run it by hand.
$(CLAUDE_BIN): $(E2E_MK)
	npm install --prefix $(E2E_DIR) --no-audit --no-fund --save-exact @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	@$@ --version >/dev/null 2>&1 || node $(E2E_DIR)/node_modules/@anthropic-ai/claude-code/install.cjs
	@$@ --version | grep -qF '$(CLAUDE_CODE_VERSION) (Claude Code)' \
	  || { echo "$@ is not Claude Code $(CLAUDE_CODE_VERSION)" >&2; rm -f $@; exit 1; }
	@touch $@

e2e-clean:
	rm -rf $(E2E_DIR)

.DEFAULT_GOAL := $(_E2E_DEFAULT_GOAL)
