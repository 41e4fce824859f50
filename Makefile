# yardlab — the two commands are `make demo` and `make test`; everything else is what they need.
# Every step installs only what is missing, and caches live outside the work tree
# (~/.m2, ~/.cache/uv, ~/.npm), so a second run on the same machine is quick.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian's Python first: the venvs' interpreter must be one that every OS account of the stack can
# run (the users' Lab servers, the service account, YARN's containers), and a pyenv Python under a
# 0700 /root is not
PYTHON ?= $(shell for p in /usr/bin/python3.11 /usr/local/bin/python3.11; do test -x $$p && { echo $$p; exit; }; done; command -v python3.11 || command -v python3)
VENV := .venv
EG_VENV := .venv-eg
UV := $(VENV)/bin/uv
HADOOP_LIB := dev/hadoop/lib
KAFKA_LIB := dev/kafka/lib
LABEXT := build/labextension/package.json
APT_UPDATED := /tmp/.yardlab-apt-updated
PYTEST_ARGS ?=
# the pytest files that need no stack (no `stack` fixture, nothing started): `make test-unit`
UNIT_TESTS := tests/unit tests/helm

.PHONY: help install demo demo-stop test test-unit lab clean distclean system

help:
	@echo "make demo   start the whole local stack (Hadoop, Enterprise Gateway, JupyterHub); Ctrl-C stops it"
	@echo "make test   install what is missing and run the whole test suite"
	@echo "make test-unit  the unit tests alone (jest, then pytest on UNIT_TESTS): no stack, under a minute"

# --- system packages (Debian): Java 17, Maven, Node, Chromium for the browser tests, MIT Kerberos
# (libkrb5-dev: python-gssapi builds against it; krb5-user: kinit and klist), R and IRkernel for the
# "R on YARN" kernel (this machine is the NodeManager: a cluster installs them on every NodeManager)
system:
	@need=""; \
	command -v java >/dev/null || need="$$need openjdk-17-jdk-headless"; \
	command -v mvn >/dev/null || need="$$need maven"; \
	command -v npm >/dev/null || need="$$need nodejs npm"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	command -v krb5-config >/dev/null || need="$$need libkrb5-dev"; \
	command -v kinit >/dev/null || need="$$need krb5-user"; \
	command -v R >/dev/null || need="$$need r-base-core"; \
	test -e /usr/lib/R/site-library/IRkernel/DESCRIPTION || need="$$need r-cran-irkernel"; \
	{ ! test -x /usr/bin/python3.11 || /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null; } || need="$$need python3.11-venv"; \
	if [ -n "$$need" ]; then \
	  echo "installing system packages:$$need"; \
	  { [ -f $(APT_UPDATED) ] || { apt-get update -qq && touch $(APT_UPDATED); }; } && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null || \
	  { echo "error: could not install$$need with apt-get (are you root, and is the Debian mirror reachable?)"; exit 1; }; \
	fi
	@java -version 2>&1 | grep -q '"17\|"2[0-9]' || { echo "error: Java 17 or newer is needed (java -version says: $$(java -version 2>&1 | head -1))"; exit 1; }

# --- Python: the platform venv (hub, lab, edge, pyspark, tests) and EG's own venv ------------------
$(VENV)/.deps: setup.py | system
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(VENV)/bin/pip install -q uv
	$(UV) pip install -q --python $(VENV)/bin/python '.[all]' || \
	  { echo "error: installing Python packages from PyPI failed (see above)"; exit 1; }
	@touch $@

# Enterprise Gateway 3.3 pins jupyter_server 1.x, jupyter_client 6 and pyzmq<25 (no cp312 wheels):
# it gets a Python 3.11 venv of its own.  gateway_provisioners is only a source of the kernel
# launcher scripts (its dependencies clash with EG's), hence --no-deps.
$(EG_VENV)/.deps: dev/requirements-eg.txt | system
	@test -x $(EG_VENV)/bin/python || $(PYTHON) -m venv $(EG_VENV)
	@test -x $(EG_VENV)/bin/uv || $(EG_VENV)/bin/pip install -q uv
	$(EG_VENV)/bin/uv pip install -q --python $(EG_VENV)/bin/python -r dev/requirements-eg.txt || \
	  { echo "error: installing Enterprise Gateway from PyPI failed (see above)"; exit 1; }
	$(EG_VENV)/bin/uv pip install -q --python $(EG_VENV)/bin/python --no-deps gateway-provisioners==0.5.0
	@touch $@

# --- Hadoop jars from Maven Central --------------------------------------------------------------
$(HADOOP_LIB)/.done: dev/hadoop/pom.xml | system
	rm -rf $(HADOOP_LIB)
	mvn -q -B -f dev/hadoop/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(CURDIR)/$(HADOOP_LIB) || \
	  { echo "error: fetching the Hadoop jars from Maven Central failed (see above)"; exit 1; }
	@touch $@

# --- Kafka's jars (the local stack's broker, KRaft mode) from Maven Central, cached in ~/.m2 ---------
$(KAFKA_LIB)/.done: dev/kafka/pom.xml | system
	rm -rf $(KAFKA_LIB)
	mvn -q -B -f dev/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB) || \
	  { echo "error: fetching the Kafka jars from Maven Central failed (see above)"; exit 1; }
	@touch $@

# --- npm: the JupyterLab extension build and configurable-http-proxy ------------------------------
node_modules/.done: package.json package-lock.json | system
	npm ci --no-audit --no-fund --loglevel=error || \
	  { echo "error: installing npm packages failed (see above)"; exit 1; }
	@touch $@

LABEXT_SOURCES := $(shell find labextension -type f \( -name '*.ts' -o -name '*.tsx' -o -name '*.css' -o -name '*.js' -o -name '*.svg' \) -not -path '*/node_modules/*' -not -path '*/lib/*' 2>/dev/null)
$(LABEXT): node_modules/.done $(VENV)/.deps $(LABEXT_SOURCES) tsconfig.json
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH npm run build
	@touch $@

lab: $(LABEXT)

# the hub service's chart library, from node_modules (package.json pins it) into its static folder
CHARTJS := hub_service/static/vendor/chart.umd.min.js
$(CHARTJS): node_modules/.done
	@mkdir -p $(@D)
	cp node_modules/chart.js/dist/chart.umd.min.js $@
	cp node_modules/chart.js/LICENSE.md $(@D)/chart.js.LICENSE.md

# the project itself, freshly built each time (a wheel: it carries the prebuilt lab extension);
# the tests import the installed package, so they see the work tree only after this
REINSTALL_PROJECT = $(UV) pip install -q --python $(VENV)/bin/python --reinstall-package yardlab --no-deps .

install: $(VENV)/.deps $(EG_VENV)/.deps $(HADOOP_LIB)/.done $(KAFKA_LIB)/.done $(LABEXT) $(CHARTJS)
	$(REINSTALL_PROJECT)

demo: install
	$(VENV)/bin/python dev/stack.py up

demo-stop:
	$(VENV)/bin/python dev/stack.py down

# the whole suite runs on the Kerberized stack (the default) with the demo login; then a short smoke
# test of the simple-auth stack (YARDLAB_SECURITY=simple) keeps that setting working, in a state
# folder of its own (its HDFS and files belong to one account, the Kerberized stack's to several).
# That stack logs people in at its OpenID Connect provider (YARDLAB_AUTH=oidc), and the single
# sign-on tests (marked oidc, left out of the first run) run on it: no third stack start.
SIMPLE_SMOKE := tests/stack/test_stack_hadoop.py tests/stack/test_eg_kernels.py \
  tests/stack/test_storage.py::test_roots_are_provisioned_on_first_contact \
  tests/stack/test_storage.py::test_personal_files_are_private \
  tests/ui/test_oidc.py

test: install
	npm test --silent
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
	YARDLAB_SECURITY=simple YARDLAB_AUTH=oidc YARDLAB_STACK_DIR=$(CURDIR)/.stack-simple \
	  $(VENV)/bin/python -m pytest $(PYTEST_ARGS) $(SIMPLE_SMOKE)

# no lab extension build, no stack: the Python venvs (one unit test starts the real EG binary from
# .venv-eg on a free port), the Maven jars (the Kerberos unit tests run the real MiniKdc from them;
# ktutil and kinit come with the system packages), node_modules and the project reinstalled
test-unit: $(VENV)/.deps $(EG_VENV)/.deps $(HADOOP_LIB)/.done node_modules/.done
	$(REINSTALL_PROJECT)
	npm test --silent
	$(VENV)/bin/python -m pytest --timeout=120 $(PYTEST_ARGS) $(UNIT_TESTS)

clean:
	rm -rf build lib dist *.egg-info .pytest_cache test-artifacts

distclean: clean
	rm -rf $(VENV) $(EG_VENV) node_modules $(HADOOP_LIB) $(KAFKA_LIB) .stack .stack-simple
