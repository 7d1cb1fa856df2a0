#!/usr/bin/env bash
# Fetch (or reuse) two real servers from Debian's packages for the fleet tests, without
# installing anything system-wide: `apt-get download` and `dpkg-deb -x` into a cache outside
# the repo, keyed by the package version apt names.
#
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/nginx-<version>/root/usr/sbin/nginx
#       a real HTTP server serving bundles with ETags (OPA's bundle service protocol)
#   ${IMAGEGATE_CACHE:-~/.cache/imagegate}/prometheus-<version>/root/usr/bin/promtool
#       `promtool test rules` for deploy/'s alerting rules
#
#   build-debian-tools.sh          fetch what is missing, print the paths
#   build-debian-tools.sh --check  fetch nothing: print the paths, or exit 3 if one is missing
#
# The version is the one apt's lists name (bookworm: nginx 1.22.1, prometheus 2.42.0, with
# Debian's security updates); the cache directory carries it, so an update is fetched anew.
# promtool links only the C library; nginx also OpenSSL, PCRE2 and zlib, which Debian's
# base system has.
set -euo pipefail

NGINX_PACKAGE=nginx
PROMETHEUS_PACKAGE=prometheus

CHECK_ONLY=false
[[ ${1:-} == --check ]] && CHECK_ONLY=true

log() { printf 'debian-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
CACHE=${IMAGEGATE_CACHE:-$HOME/.cache/imagegate}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# found NAME BIN: the newest cached copy of a package's binary (any version), or nothing.
found() { compgen -G "$CACHE/$1-*/root/$2" | sort -V | tail -n1 || true; }

# fetch PACKAGE BIN: the package's files under CACHE/PACKAGE-VERSION/root; prints BIN's path.
fetch() {
	local package=$1 bin=$2 version dir get
	version=$(apt-cache policy "$package" 2>/dev/null | sed -n 's/^  Candidate: //p')
	if [[ -z $version || $version == "(none)" ]]; then
		apt-get update >&2 || die "apt-get update failed"
		version=$(apt-cache policy "$package" | sed -n 's/^  Candidate: //p')
	fi
	[[ -n $version && $version != "(none)" ]] || die "apt knows no package $package"
	dir=$CACHE/$package-${version//[:+~]/_}
	if [[ ! -x $dir/root/$bin ]]; then
		log "fetching $package $version"
		rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
		# As root into a root-only cache: apt's _apt sandbox user could not write there.
		get=(apt-get -o APT::Sandbox::User=root download "$package=$version")
		(cd "$dir.tmp" && "${get[@]}" >&2) || die "apt-get download $package=$version failed"
		dpkg-deb -x "$dir.tmp"/*.deb "$dir.tmp/root"
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
	else
		log "$package $version: reusing $dir"
	fi
	printf '%s\n' "$dir/root/$bin"
}

if $CHECK_ONLY; then
	NGINX=$(found "$NGINX_PACKAGE" usr/sbin/nginx)
	PROMTOOL=$(found "$PROMETHEUS_PACKAGE" usr/bin/promtool)
	[[ -n $NGINX && -n $PROMTOOL ]] || { log 'nginx or promtool is missing: run `make debian-tools`'; exit 3; }
else
	NGINX=$(fetch "$NGINX_PACKAGE" usr/sbin/nginx)
	PROMTOOL=$(fetch "$PROMETHEUS_PACKAGE" usr/bin/promtool)
fi
"$NGINX" -v 2>/dev/null || die "$NGINX does not run"
"$PROMTOOL" --version >/dev/null 2>&1 || die "$PROMTOOL does not run"
printf 'NGINX=%s\nPROMTOOL=%s\n' "$NGINX" "$PROMTOOL"
