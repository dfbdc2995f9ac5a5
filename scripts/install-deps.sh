#!/bin/sh
# Installs, on Debian 12 as root, every package Sealpost's build, tests,
# benchmark and main job need. Debian's archive only. Does nothing (and needs
# no network) when everything is already installed.
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

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	"install ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root: apt-get install$missing" >&2
	exit 1
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
