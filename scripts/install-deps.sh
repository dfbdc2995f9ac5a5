#!/bin/sh
# Installs, on Debian 12 as root, everything Sealpost's build, tests,
# benchmark and main job need: Debian packages (apt), Postfix's smtp-sink and
# smtp-source extracted from Debian's postfix package, the npm package
# imapflow (an independent IMAP client for the tests), and, for `make
# bench-mail` only, the postfix and dovecot-imapd packages, installed with
# their services kept stopped and disabled (the benchmark runs private
# instances on high ports; no MTA or IMAP server is left on 25/143). Does
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
# peers of bench/mail_bench.py: packages whose postinst would start a daemon
BENCH_PKGS="postfix dovecot-imapd"
CACHE=/var/cache/sealpost-test
PF_DIR=$CACHE/postfix          # tests/integration/queue_fix.py looks here
NPM_DIR=$CACHE/npm             # tests/integration/test_imap_imapflow.py looks here
IMAPFLOW=imapflow@2.10.2
export DEBIAN_FRONTEND=noninteractive

# prints " pkg" for each of its arguments that dpkg does not have installed
not_installed() {
	for p in "$@"; do
		st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		case "$st" in
		"install ok installed") ;;
		*) printf ' %s' "$p" ;;
		esac
	done
}
# shellcheck disable=SC2086
missing=$(not_installed $PKGS)
# shellcheck disable=SC2086
bench_missing=$(not_installed $BENCH_PKGS)
need_pf=no
[ -x "$PF_DIR/usr/sbin/smtp-sink" ] || need_pf=yes
need_npm=no
[ -d "$NPM_DIR/node_modules/imapflow" ] || need_npm=yes

if [ -z "$missing" ] && [ -z "$bench_missing" ] && [ $need_pf = no ] && [ $need_npm = no ]; then
	echo "install-deps: all present"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing: packages:${missing:- none}; bench packages:${bench_missing:- none};" \
	     "smtp-sink needed: $need_pf;" \
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

# postfix and dovecot-imapd for the mail benchmark. Their maintainer scripts
# would start an MTA on port 25 and an IMAP server on 143: a policy-rc.d that
# exits 101 makes invoke-rc.d (and deb-systemd-invoke) skip every start while
# they run, and is removed afterwards unless it was already there (Docker
# images ship one). Postfix gets "No configuration": no main.cf, nothing that
# could run by accident. Afterwards both services are stopped and disabled.
if [ -n "$bench_missing" ]; then
	echo "install-deps: installing (benchmark peers, services kept off):$bench_missing"
	rcd=/usr/sbin/policy-rc.d
	own_rcd=no
	if [ ! -e $rcd ]; then
		printf '#!/bin/sh\n# install-deps.sh: no service starts during this install\nexit 101\n' >$rcd
		chmod 755 $rcd
		own_rcd=yes
	fi
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	[ $updated = yes ] || apt-get update -qq
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends $bench_missing; then
		echo "install-deps: warning: could not install$bench_missing (make bench-mail will say it cannot run)" >&2
	fi
	[ $own_rcd = no ] || rm -f $rcd
	for svc in postfix dovecot; do
		if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
			systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
			[ $svc != dovecot ] || systemctl disable --now dovecot.socket >/dev/null 2>&1 || true
		elif [ -x /etc/init.d/$svc ]; then
			/etc/init.d/$svc stop >/dev/null 2>&1 || true
			update-rc.d $svc disable >/dev/null 2>&1 || true
		fi
	done
fi
