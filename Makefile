# Every target sets up what it needs in .venv: a fresh machine needs only Python 3.11 and a C compiler.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXT    := grid/_primes.stamp
PYC    := grid/__pycache__/.compiled

.PHONY: test test-fast test-python test-packer test-security audit lock test-ops lint-ops test-terraform test-terraform-static \
	terraform-exports chaos fuzz demo bench bench-kernel bench-queues bench-formats bench-grid bench-client bench-sqs wheel \
	clean FORCE

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	$(BIN)/pip install -e '.[test,bench,report]'
	touch $@

# setup.py renders grid/_primes.pyx from its template, then cythonizes and compiles it.
$(EXT): grid/_primes.pyx.tp setup.py $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace
	touch $@

# Byte-compiled once here: every daemon is a process of its own, and where PYTHONDONTWRITEBYTECODE is set each one
# compiled the package again at start (docs/benchmarks.md; compileall writes the files regardless).
$(PYC): $(shell find grid -name '*.py') $(STAMP)
	$(BIN)/python -m compileall -q grid
	touch $@

# Everything, molecule included (as root: podman runs the systemd containers).
test: test-terraform-static test-packer test-security test-python test-ops

# Everything but molecule (no root or podman needed).
test-fast: test-terraform-static test-packer test-security test-python lint-ops

test-python: $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -m pytest

# bandit on the package: no finding of medium severity or more, unless the line says why (# nosec Bxxx: reason).
test-security: $(STAMP)
	$(BIN)/bandit -q -r grid --severity-level medium

# pip-audit on the pinned runtime dependencies (what the AMI's wheelhouse holds). Not in make test: it reads each
# version's advisories from pypi.org/pypi/<name>/<version>/json or OSV, and neither is reachable from CI here.
audit: $(STAMP)
	$(BIN)/pip-audit --strict --disable-pip --no-deps --progress-spinner off -r requirements.lock

# requirements.lock: pyproject.toml's runtime dependencies and theirs, pinned.
lock:
	tools/lock.sh $(PYTHON)

# Debian's packer (1.6.6) is the newest installable here: it predates the `packer { required_plugins }` block (1.7),
# so its syntax check reads the template without plugins.pkr.hcl; `packer fmt` parses all of it, and
# tests/test_packer.py holds the template's settings.
PACKER_CHECK := build/packer-syntax
test-packer: $(STAMP)
	tools/apt-need packer packer
	packer fmt -check packer
	rm -rf $(PACKER_CHECK) && mkdir -p $(PACKER_CHECK)
	cp packer/*.pkr.hcl $(PACKER_CHECK)/ && rm $(PACKER_CHECK)/plugins.pkr.hcl
	packer validate -syntax-only $(PACKER_CHECK)
	$(BIN)/python -m pytest -q tests/test_packer.py

# The ops bundle: yamllint, ansible-lint (production profile), then molecule's bake and rollout scenarios on Debian 12
# systemd containers (rootful podman). Installs its own tools (apt-get as root, .venv-ops) and caches the image.
test-ops: lint-ops $(STAMP) $(EXT)
	tools/ops/setup.sh all .ops
	tools/ops/molecule.sh $(BIN)/python .ops

# The linters, and the example aws_ec2 inventory against moto's server.
lint-ops: $(STAMP)
	tools/ops/setup.sh lint .ops
	.venv-ops/bin/yamllint -s .
	.venv-ops/bin/ansible-lint -q --nocolor
	$(BIN)/python tools/ops/check_inventory.py .venv-ops/bin/ansible-inventory

# Faults on the SQS path (tests/test_chaos.py), longer: more tasks and kills, 30 s outages; a report line per fault.
chaos: $(STAMP) $(EXT) $(PYC)
	GRID_CHAOS=long $(BIN)/python -m pytest -q -p no:logging tests/test_chaos.py

# The fuzz targets (tests/test_fuzz.py: the wire decoders, the configuration loader), longer: FUZZ_EXAMPLES examples
# each, new ones every run, where make test runs 200, the same ones every time.
FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP) $(EXT) $(PYC)
	GRID_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:logging tests/test_fuzz.py

# The demo's story, ~40 s (docs/demo.md); `grid local --tasks N` is the quick throughput run.
demo: $(STAMP) $(EXT) $(PYC)
	$(BIN)/grid local

bench: bench-kernel bench-queues bench-formats bench-grid bench-client bench-sqs

bench-kernel: $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -P benchmarks/kernel.py

bench-queues: $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -P benchmarks/queues.py

# The wire's compact bundle, format 2 against 3: CPU per task of each role's packing, decoding and storing.
bench-formats: $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -P benchmarks/formats.py

bench-grid: $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -P benchmarks/grid.py

bench-client: $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -P benchmarks/client.py

# The SQS path at latency: a delay added to every queue call (embedded queue) and every AWS request (moto's server).
bench-sqs: $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -P benchmarks/sqs.py

# dist/wheelhouse: the grid wheel + its runtime dependencies' wheels (what Packer uploads and Ansible installs);
# GRID_VERSION=0.1.0+b builds the same source as another version.
wheel: $(STAMP)
	tools/ops/wheelhouse.sh $(BIN)/python

# ---- Terraform (terraform/): formatting, init from a provider mirror, validate, `terraform test` with a mocked
# provider, checkov, and the pytest tests of terraform/ (the apply against moto's server among them).
# TF_PLUGIN_MIRROR: a filesystem mirror of hashicorp/aws (`terraform providers mirror DIR` makes one); empty installs
# from the Terraform registry. The apply test (tests/test_terraform_apply.py) reads the same variable.
TF_PLUGIN_MIRROR ?= /opt/tf-plugins
export TF_PLUGIN_MIRROR
TF_DIRS     := terraform terraform/modules/queue terraform/modules/fleet
TF_RC       := build/terraformrc
CHECKOV     := .venv-checkov
CHECKOV_VERSION := 3.3.30

$(TF_RC): FORCE
	@command -v terraform >/dev/null || { echo "terraform is not installed: install Terraform >= 1.9 (developer.hashicorp.com/terraform/install)"; exit 1; }
	@test -z "$(TF_PLUGIN_MIRROR)" || test -d "$(TF_PLUGIN_MIRROR)/registry.terraform.io/hashicorp/aws" || { echo "no hashicorp/aws provider under TF_PLUGIN_MIRROR=$(TF_PLUGIN_MIRROR): point it at a mirror (terraform providers mirror DIR), or set it empty to use the registry"; exit 1; }
	@mkdir -p $(@D)
	@if [ -n "$(TF_PLUGIN_MIRROR)" ]; then printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' "$(abspath $(TF_PLUGIN_MIRROR))"; fi > $@

$(CHECKOV)/.installed:
	test -x $(CHECKOV)/bin/python || $(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install -q 'checkov==$(CHECKOV_VERSION)'
	touch $@

test-terraform-static: $(TF_RC) $(CHECKOV)/.installed
	terraform fmt -check -recursive -diff terraform
	@for dir in $(TF_DIRS); do \
	  echo "terraform init + validate: $$dir"; \
	  TF_CLI_CONFIG_FILE=$(abspath $(TF_RC)) terraform -chdir=$$dir init -backend=false -input=false -no-color >/dev/null \
	    && terraform -chdir=$$dir validate -no-color || exit 1; \
	done
	TF_CLI_CONFIG_FILE=$(abspath $(TF_RC)) terraform -chdir=terraform test -no-color
	$(CHECKOV)/bin/checkov -d terraform --framework terraform --skip-download --compact --quiet

test-terraform: test-terraform-static $(STAMP) $(EXT) $(PYC)
	$(BIN)/python -m pytest tests/test_terraform_apply.py tests/test_terraform_exports.py

# The registry exports Terraform reads: regenerate after changing grid/config.py or grid/metrics.py. The state
# directory is the instances' (/var/lib/grid), not this user's.
terraform-exports: $(STAMP)
	XDG_STATE_HOME=/var/lib $(BIN)/grid config export --output terraform/grid-parameters.json
	$(BIN)/python -c 'import json, grid.metrics as m; print(json.dumps(m.export(), indent=2))' > terraform/grid-metrics.json

FORCE:

clean:
	rm -rf build dist .ops *.egg-info grid/_primes.pyx grid/_primes.c grid/_primes*.so $(EXT)
