# ccproxy: `make run` starts the proxy in the foreground, `make test` runs the whole suite.
# Both create .venv when it is missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED_RUN := $(VENV)/.installed-run
INSTALLED_TEST := $(VENV)/.installed-test
# The test extra, plus the exact tokenizer so the estimator's error is checked against it.
# (A variable: a comma inside $(call ...) would split the argument.)
TEST_EXTRAS := [test,tokenizer]

include mk/e2e.mk

.PHONY: run test typecheck lint bench clean

run: $(INSTALLED_RUN)
	$(BIN)/twistd -n --pidfile= ccproxy

test: $(INSTALLED_TEST) $(CLAUDE_BIN)
	$(BIN)/python -m pytest

typecheck: $(INSTALLED_TEST)
	$(BIN)/mypy

lint: $(INSTALLED_TEST)
	$(BIN)/ruff check ccproxy tests bench

bench: $(INSTALLED_TEST)
	$(BIN)/python -m bench.run

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# An editable install in "compat" mode puts the repository root on sys.path, which is
# what lets twistd find twisted/plugins/ccproxy_plugin.py (a PEP 660 finder hook hides it).
# Rebuilding the plugin cache afterwards avoids a rescan on every twistd start.
define install
	$(BIN)/python -m pip install -q -e '.$(1)' --config-settings editable_mode=compat
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
endef

$(INSTALLED_RUN): pyproject.toml | $(BIN)/python
	$(call install,)
	@touch $@

$(INSTALLED_TEST): pyproject.toml | $(BIN)/python
	$(call install,$(TEST_EXTRAS))
	@touch $@ $(INSTALLED_RUN)

clean:
	rm -rf $(VENV) $(E2E_DIR) build *.egg-info twisted/plugins/dropin.cache
