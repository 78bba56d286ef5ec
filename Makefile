# Every target that runs code first builds the virtualenvs it needs, so a
# fresh clone needs only `make sync` or `make test`.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VENVS := .venvs
CONNECTORS := tap-postgres target-postgres target-redshift transform-field tap-segment
CONNECTOR_STAMPS := $(foreach c,$(CONNECTORS),$(VENVS)/$(c)/.installed)
PIP_QUIET := --quiet --disable-pip-version-check

# Optional arguments for `make sync` and the bookmark targets.
TABLES ?=
FULL_REFRESH ?=
SCALE ?=
SYNC_ARGS := $(if $(TABLES),--tables $(TABLES)) $(if $(SOURCES),--sources $(SOURCES)) $(if $(ONLY),--only $(ONLY)) \
             $(if $(FULL_REFRESH),--full-refresh) $(if $(DRY_RUN),--dry-run)

CLI := $(VENV)/bin/python -m warehouse_sync

.PHONY: help setup sync test bench warehouse-sql sandbox-change sandbox-stop \
        sandbox-clean bookmarks bookmark-reset discover deploy secret-blocks lock clean

help:
	@echo "make sync            replicate the production database (the local sandbox when nothing is configured)"
	@echo "                     TABLES=Users,Stacks  only these tables; FULL_REFRESH=1  reset their bookmarks first"
	@echo "make test            run the test suite (starts its own PostgreSQL and S3 servers)"
	@echo "make bench           run the benchmarks and record them in docs/benchmarks.md"
	@echo "make warehouse-sql   SQL='select ...' runs one statement on the sandbox warehouse; without SQL opens psql"
	@echo "make sandbox-change  add new rows and change existing ones in the sandbox production database"
	@echo "make bookmarks       list bookmarks; make bookmark-reset TABLES=Users [DRY_RUN=1]"
	@echo "make sandbox-stop    stop the sandbox PostgreSQL server; make sandbox-clean deletes it"
	@echo "make deploy          register work pool, deployments and automations with PREFECT_API_URL"
	@echo "make secret-blocks   create Prefect Secret blocks from the secrets in .env"
	@echo "make setup           build the project and connector virtualenvs only"

setup: $(VENV)/.installed $(CONNECTOR_STAMPS)

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_QUIET) -c requirements.lock -e '.[test]'
	touch $@

# Each connector gets its own virtualenv with its full dependency closure
# pinned in connectors/NAME.txt and installed without dependency resolution,
# which overrides the obsolete pins the packages declare.
$(VENVS)/%/.installed: connectors/%.txt
	rm -rf $(VENVS)/$*
	$(PYTHON) -m venv $(VENVS)/$*
	$(VENVS)/$*/bin/pip install $(PIP_QUIET) --no-deps -r connectors/$*.txt
	touch $@

sync: setup
	$(CLI) sync $(SYNC_ARGS)

test: setup
	$(VENV)/bin/pytest

bench: setup
	$(VENV)/bin/python scripts/bench.py $(BENCH_ARGS)

warehouse-sql: setup
	$(CLI) warehouse-sql $(if $(SQL),--sql "$$SQL")

sandbox-change: setup
	$(CLI) sandbox change

sandbox-stop: $(VENV)/.installed
	$(CLI) sandbox stop

sandbox-clean: $(VENV)/.installed
	$(CLI) sandbox clean

bookmarks: setup
	$(CLI) bookmarks list

bookmark-reset: setup
	$(CLI) bookmarks reset $(if $(TABLES),--tables $(TABLES)) $(if $(DRY_RUN),--dry-run)

discover: setup
	$(CLI) discover

# Refresh requirements.lock from the current project virtualenv.
lock: $(VENV)/.installed
	$(VENV)/bin/pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) $(VENVS)

# Against the Prefect API in PREFECT_API_URL: create or update the work pool,
# register the deployments in prefect.yaml and apply the automations.
WORK_POOL ?= warehouse-sync
deploy: $(VENV)/.installed
	$(VENV)/bin/prefect work-pool create $(WORK_POOL) --type process \
	    --base-job-template deployments/process-work-pool.json --overwrite
	$(VENV)/bin/prefect --no-prompt deploy --all
	$(VENV)/bin/python deployments/apply_automations.py

# Create Prefect Secret blocks from the secrets in .env (ENV_FILE=...).
secret-blocks: $(VENV)/.installed
	$(CLI) secret-blocks --env-file $(or $(ENV_FILE),.env)
