# The two set-up commands of the README: `make run` and `make test`. Both work on a fresh Debian machine as root.
VENV ?= .venv
PIP = $(VENV)/bin/pip -q --disable-pip-version-check

.PHONY: run test system-packages check-run-path

$(VENV)/.app: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -e .
	touch $@

$(VENV)/.test: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -e '.[test]'
	touch $@ $(VENV)/.app

run: $(VENV)/.app
	$(VENV)/bin/stcnn-dashboard

# Chromium and its driver for the browser tests, Redis for the Celery path, PostgreSQL for the run index on a
# server (Debian packages; the tests start their own servers).
system-packages:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v redis-server >/dev/null \
	  && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver redis-server \
	  postgresql)

test: $(VENV)/.test system-packages
	$(VENV)/bin/ruff check segmentation dashboard tests benchmarks
	DASH_TEST_CHROMEPATH=/usr/bin/chromium $(VENV)/bin/pytest --headless -q

# The run command's install alone (no test extras) in a new venv, then the dashboard and the CLI from it:
# a runtime dependency that only the test extras pull in fails here. .ci/run calls it after the tests.
RUN_CHECK_VENV ?= /tmp/stcnn-run-check/venv
check-run-path:
	rm -rf $(RUN_CHECK_VENV)
	$(MAKE) --no-print-directory VENV=$(RUN_CHECK_VENV) $(RUN_CHECK_VENV)/.app
	$(RUN_CHECK_VENV)/bin/python .ci/check_run_path.py $(RUN_CHECK_VENV)
