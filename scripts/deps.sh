#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages nfips builds and tests with. Idempotent:
# apt runs only when something is missing.
set -euo pipefail
PACKAGES=(
  build-essential python3 pkg-config
  libnetfilter-queue-dev libmnl-dev
  iptables iproute2 kmod procps
  iputils-ping curl netcat-openbsd iperf3
  libpcap-dev hping3 nmap tcpdump ipset
  # test/: setpriv and unshare; systemd-analyze and systemd-sysusers check the unit
  util-linux systemd
  # lab/ (make eval): real programs for normal traffic and attacks
  hydra slowhttptest dnsmasq-base openssh-server openssh-client
  python3-scapy bind9-dnsutils nftables
  # test/integration/crowdsec*: a real CrowdSec Local API, cscli, and the stock
  # firewall bouncer for the interoperability test
  crowdsec crowdsec-firewall-bouncer
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  # openssh-server's postinst would start sshd on this host: the lab runs its own
  # sshd inside a namespace only. A policy-rc.d answering 101 stops invoke-rc.d and
  # deb-systemd-invoke from starting any service during the install; it is ours to
  # remove only if there was none before.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from nfips scripts/deps.sh: no service starts during the install\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  # crowdsec's postinst registers with CrowdSec's central API and fails without
  # internet; Debian's README.Debian for the package: an online_api_credentials.yaml
  # holding only a comment makes it skip that. The tests run their own Local API.
  if printf '%s\n' "${missing[@]}" | grep -qx crowdsec && [ ! -e /etc/crowdsec/online_api_credentials.yaml ]; then
    mkdir -p /etc/crowdsec
    printf '# no central API (nfips scripts/deps.sh)\n' > /etc/crowdsec/online_api_credentials.yaml
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" = 1 ]; then rm -f "$policy"; trap - EXIT; fi
  # The packages enable their services; on this machine the tests start their own
  # Local API and bouncer inside namespaces, so none may come up at the next boot.
  for unit in crowdsec crowdsec-firewall-bouncer; do
    if printf '%s\n' "${missing[@]}" | grep -qx "$unit" && command -v systemctl >/dev/null; then
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi
# NFQUEUE may be built as a module; loading it is harmless when built in.
modprobe nfnetlink_queue 2>/dev/null || true
# 20.19 is the first 20.x that can require() ES modules (ml-kmeans is one).
command -v node >/dev/null || { echo "deps: Node.js 20.19 or newer is required" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' || { echo "deps: Node.js 20.19 or newer is required (found $(node -v))" >&2; exit 1; }
