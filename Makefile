# nfips: the two Quick start commands are `make demo` and `make test`.
# Both install what they need (apt packages, npm ci, native + TypeScript build).
SHELL := /bin/bash
NODE_MODULES_STAMP := node_modules/.package-lock.json
ADDON := build/Release/nfips_nfq.node
TS_STAMP := dist/.built

.PHONY: all deps build test unit integration demo bench bench-quick model soak fuzz install uninstall clean eval eval-quick man

all: build

deps:
	@bash scripts/deps.sh

$(NODE_MODULES_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

$(ADDON): $(NODE_MODULES_STAMP) binding.gyp $(wildcard native/*.cc native/*.h)
	npm run --silent build:native

# One tsc run builds src/ (shipped) and test/, bench/, lab/ (not shipped: make install copies dist/src only).
$(TS_STAMP): $(NODE_MODULES_STAMP) tsconfig.json $(shell find src test bench lab -name '*.ts' 2>/dev/null)
	npm run --silent build:ts
	@touch $@

build: deps $(ADDON) $(TS_STAMP)

# The man page, generated from the command line's --help texts.
MAN := dist/nfips.1
$(MAN): $(TS_STAMP) $(ADDON)
	node dist/src/cli/man.js > $@.tmp && mv $@.tmp $@

man: build $(MAN)

# Unit and integration tests (integration ones need root and build their own namespaces).
# Files are named explicitly: node 20 would also run the helpers under dist/test/.
test: build
	node --test --test-concurrency=1 $(sort $(wildcard dist/test/unit/*.test.js) $(wildcard dist/test/integration/*.test.js))

unit: build
	node --test $(wildcard dist/test/unit/*.test.js)

integration: build
	node --test --test-concurrency=1 $(wildcard dist/test/integration/*.test.js)

# The demo is lab code (namespaces, traffic recipe): it drives the built nfips, it is not part of it.
demo: build
	node dist/lab/demo/demo.js

# Regenerates models/default.json: 15 min of normal traffic (scripted recipe + real programs) through nfips in namespaces, then training.
model: build
	node dist/lab/model-recipe.js --minutes 15 --out models/default.json

# The detection tests with 15 min of normal traffic instead of CI's 3 (make test runs the short form).
soak: build
	NFIPS_NORMAL_SECONDS=900 node --test dist/test/integration/detection.test.js

# One million randomly mutated packets through nfips in namespaces (make test sends the short form, 50,000).
fuzz: build
	NFIPS_FUZZ_PACKETS=1000000 node --test dist/test/integration/evasion-fuzz.test.js

# Throughput/latency benchmark against a C loop and the npm nfqueue package (not a test).
bench: build
	node dist/bench/bench.js

bench-quick: build
	node dist/bench/bench.js --quick

# 10,000 CrowdSec decisions applied from a real Local API (issue 15); writes bench/out/crowdsec-bench.json.
.PHONY: bench-crowdsec
bench-crowdsec: build
	node dist/bench/crowdsec-bench.js

# Passive capture (issue 14): 64-byte UDP at 100 kpps through one capture thread running the
# whole pipeline at default settings; writes bench/out/capture-bench.json.
.PHONY: bench-capture
bench-capture: build
	node dist/bench/capture-bench.js

# Installs the built tree under $(PREFIX)/lib/nfips (production modules only), the nfips
# command, the systemd unit and logrotate file, and the sysusers.d/tmpfiles.d entries for
# the service user; the operator's /etc/nfips/rules.json, /etc/nfips/nfips.yaml and /etc/default/nfips are created
# only when absent. Without DESTDIR it also creates the nfips system user the unit runs as
# (with DESTDIR, a package's install scripts do that from the sysusers.d entry).
PREFIX ?= /usr/local
LIBDIR = $(DESTDIR)$(PREFIX)/lib/nfips

install: build $(MAN)
	install -d $(LIBDIR)/dist $(LIBDIR)/build/Release $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/systemd/system \
		$(DESTDIR)/etc/nfips $(DESTDIR)/etc/default $(DESTDIR)/etc/logrotate.d \
		$(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(PREFIX)/share/nfips \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	rm -rf $(LIBDIR)/dist/src $(LIBDIR)/node_modules
	cp -a package.json package-lock.json README.md bin rules models iptables node_modules $(LIBDIR)/
	cp -a dist/src $(LIBDIR)/dist/
	install -m 0755 $(ADDON) $(LIBDIR)/build/Release/
	cd $(LIBDIR) && npm prune --omit=dev --no-audit --no-fund >/dev/null
	ln -sfn $(PREFIX)/lib/nfips/bin/nfips $(DESTDIR)$(PREFIX)/bin/nfips
	sed 's|@PREFIX@|$(PREFIX)|g' packaging/nfips.service.in > $(DESTDIR)/etc/systemd/system/nfips.service
	install -m 0644 packaging/nfips.logrotate $(DESTDIR)/etc/logrotate.d/nfips
	install -m 0644 packaging/nfips.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/nfips.conf
	install -m 0644 packaging/nfips.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/nfips.conf
	install -m 0644 packaging/nfips-grafana.json $(DESTDIR)$(PREFIX)/share/nfips/nfips-grafana.json
	install -m 0644 $(MAN) $(DESTDIR)$(PREFIX)/share/man/man1/nfips.1
	node bin/nfips completion > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/nfips
	@if [ -z "$(DESTDIR)" ]; then \
		getent passwd nfips >/dev/null || useradd --system --user-group --home-dir /var/lib/nfips --no-create-home \
			--shell /usr/sbin/nologin --comment "nfips inline IPS" nfips; \
		systemd-tmpfiles --create $(PREFIX)/lib/tmpfiles.d/nfips.conf; \
	fi
	[ -e $(DESTDIR)/etc/nfips/rules.json ] || install -m 0644 rules/default.json $(DESTDIR)/etc/nfips/rules.json
	[ -e $(DESTDIR)/etc/nfips/nfips.yaml ] || install -m 0644 packaging/nfips.yaml $(DESTDIR)/etc/nfips/nfips.yaml
	[ -e $(DESTDIR)/etc/default/nfips ] || install -m 0644 packaging/nfips.default $(DESTDIR)/etc/default/nfips

uninstall:
	rm -rf $(LIBDIR) $(DESTDIR)$(PREFIX)/bin/nfips $(DESTDIR)/etc/systemd/system/nfips.service $(DESTDIR)/etc/logrotate.d/nfips \
		$(DESTDIR)$(PREFIX)/lib/sysusers.d/nfips.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/nfips.conf $(DESTDIR)$(PREFIX)/share/nfips \
		$(DESTDIR)$(PREFIX)/share/man/man1/nfips.1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions/nfips

clean:
	rm -rf build dist bench/out

# Detection benchmark with real programs (lab/: not installed, not part of make test):
# normal traffic from curl, dig, ssh/scp and ping, then hping3, nmap, hydra and
# slowhttptest attacks, each timed to nfips' alert and block. Writes bench/out/eval-*.md/.json.
eval: build
	node dist/lab/eval/eval.js --normal-minutes 30 --attack-seconds 30

eval-quick: build
	node dist/lab/eval/eval.js --normal-minutes 2 --attack-seconds 20 --max-pause-seconds 60
