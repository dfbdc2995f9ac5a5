#!/bin/sh
# Installs, on Debian 12 as root, everything Sealpost's build, tests,
# benchmark and main job need: Debian packages (apt), Postfix's smtp-sink and
# smtp-source extracted from Debian's postfix package (no MTA installed), and
# the npm package imapflow (an independent IMAP client for the tests). Does
# nothing, and needs no network, when everything is already there.
set -eu

PKGS="
pkg-config make gcc clang libclang-rt-14-dev
libssl-dev openssl libp11-kit-dev p11-kit libp11-dev libevent-dev libldap-dev
libcmocka-dev python3 python3-pytest
softhsm2 opensc gnutls-bin libengine-pkcs11-openssl
swaks libnet-ssleay-perl testssl.sh sslscan curl
slapd ldap-utils memcached whois
nginx-light gnuplot-nox procps iproute2 ca-certificates
"
CACHE=/var/cache/sealpost-test
PF_DIR=$CACHE/postfix          # tests/integration/queue_fix.py looks here
NPM_DIR=$CACHE/npm             # tests/integration/test_imap_imapflow.py looks here
IMAPFLOW=imapflow@2.10.2
export DEBIAN_FRONTEND=noninteractive

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
need_pf=no
[ -x "$PF_DIR/usr/sbin/smtp-sink" ] || need_pf=yes
need_npm=no
[ -d "$NPM_DIR/node_modules/imapflow" ] || need_npm=yes

if [ -z "$missing" ] && [ $need_pf = no ] && [ $need_npm = no ]; then
	echo "install-deps: all present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing: packages:${missing:- none}; smtp-sink needed: $need_pf;" \
	     "$IMAPFLOW needed: $need_npm" >&2
	echo "install-deps: run this script as root" >&2
	exit 1
fi

updated=no
if [ -n "$missing" ]; then
	echo "install-deps: installing:$missing"
	apt-get update -qq
	updated=yes
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
fi

# smtp-sink / smtp-source: extracted, never installed as an MTA. A machine
# whose package lists are stale gets one apt-get update and a second try.
if [ $need_pf = yes ]; then
	pf_tmp=$(mktemp -d)
	fetch_pf() { (cd "$pf_tmp" && apt-get download -qq postfix >/dev/null 2>&1); }
	if ! fetch_pf && [ $updated = no ]; then
		apt-get update -qq && fetch_pf || true
	fi
	if ls "$pf_tmp"/postfix_*.deb >/dev/null 2>&1 && mkdir -p "$PF_DIR" &&
	   dpkg-deb -x "$pf_tmp"/postfix_*.deb "$PF_DIR"; then
		echo "install-deps: smtp-sink and smtp-source in $PF_DIR"
	else
		echo "install-deps: warning: could not fetch postfix (the queue tests will say they skip)" >&2
	fi
	rm -rf "$pf_tmp"
fi

if [ $need_npm = yes ]; then
	if command -v npm >/dev/null 2>&1; then
		mkdir -p "$NPM_DIR"
		if npm install --prefix "$NPM_DIR" --no-audit --no-fund --silent "$IMAPFLOW"; then
			echo "install-deps: $IMAPFLOW in $NPM_DIR"
		else
			echo "install-deps: warning: npm install $IMAPFLOW failed (the imapflow test will say it skips)" >&2
		fi
	else
		echo "install-deps: warning: no npm on this machine (the imapflow test will say it skips)" >&2
	fi
fi
