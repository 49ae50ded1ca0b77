#!/usr/bin/env bash
# Installs what fanout's e2e tests run against, on a fresh machine or an old one.
# Idempotent and cheap when everything is there; `make test` runs it every time.
#
#   - apt packages, only if missing: redis-server (redis-server, redis-cli), kcat,
#     docker-compose (only to validate compose files; a failed install is a warning)
#   - Apache Kafka's broker jars from Maven Central (version: e2e/kafka/pom.xml,
#     property kafka.version, and nowhere else) into
#       ${FANOUT_CACHE:-$HOME/.cache/fanout}/kafka-<version>/lib
#     e2e/services/kafka.go finds them there by the same rule
#     (FANOUT_KAFKA_LIB overrides it). Nothing is exported.
#   - third-party Python Kafka clients from PyPI (pinned in e2e/python/requirements.txt:
#     confluent-kafka with its AvroSerializer, fastavro) into a venv at
#       ${FANOUT_CACHE:-$HOME/.cache/fanout}/pyclients
#     e2e/registry_test.go produces with them. A failed install fails this script.
#
# Java 17+ and Maven must already be on the machine; this script says so if not.
set -euo pipefail

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: ERROR: %s\n' "$*" >&2; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/kafka/pom.xml"

# ---------------------------------------------------------------- apt packages
apt_updated=0
apt_install() { # package...
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || { say "not root and no sudo: cannot apt-get install $*"; return 1; }
		sudo=(sudo -n)
	fi
	if [ "$apt_updated" -eq 0 ]; then
		say "apt-get update"
		"${sudo[@]}" apt-get update -qq || return 1
		apt_updated=1
	fi
	say "apt-get install $*"
	# No recommends: docker-compose would otherwise pull in the docker.io engine.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
}

need=()
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
	say "redis-server present: $(redis-server --version | head -n1)"
else
	need+=(redis-server)
fi
if command -v kcat >/dev/null 2>&1; then
	say "kcat present: $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*/\1/p' || true)"
else
	need+=(kcat)
fi
if [ "${#need[@]}" -gt 0 ]; then
	apt_install "${need[@]}" || die "could not install ${need[*]} with apt-get"
	command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
	command -v kcat >/dev/null 2>&1 || die "kcat still missing after apt-get install"
fi

if command -v docker-compose >/dev/null 2>&1; then
	say "docker-compose present: $(docker-compose version --short 2>/dev/null || echo '?')"
elif apt_install docker-compose && command -v docker-compose >/dev/null 2>&1; then
	say "docker-compose installed"
else
	say "WARNING: docker-compose could not be installed; compose-file validation will not run"
fi

# ---------------------------------------------------------------- Java, Maven
command -v java >/dev/null 2>&1 || die "java not found: Kafka 4.x needs Java 17+ (e.g. apt-get install openjdk-17-jre-headless)"
java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')"
java_major="${java_major#1.}"
[ -n "$java_major" ] && [ "${java_major%%.*}" -ge 17 ] ||
	die "java is version '${java_major:-unknown}'; Kafka 4.x brokers need Java 17+"
say "java $java_major at $(command -v java)"
command -v mvn >/dev/null 2>&1 || die "mvn not found: needed to fetch Kafka from Maven Central (e.g. apt-get install maven)"

# ---------------------------------------------------------------- Kafka jars
kafka_version="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$pom" | head -n1)"
[ -n "$kafka_version" ] || die "no <kafka.version> property in $pom"
cache="${FANOUT_CACHE:-$HOME/.cache/fanout}"
kafka_home="$cache/kafka-$kafka_version"
lib="$kafka_home/lib"
# The marker records the pom it was built from, so editing the pom refetches.
marker="$lib/.fanout-complete"
pom_sum="$(sha256sum "$pom" | cut -d' ' -f1)"

if [ -f "$marker" ] && [ "$(cat "$marker")" = "$pom_sum" ]; then
	say "Kafka $kafka_version jars already complete ($(ls "$lib"/*.jar | wc -l) jars)"
else
	say "fetching Kafka $kafka_version jars from Maven Central (minutes if ~/.m2 is cold)"
	mkdir -p "$kafka_home"
	tmp="$(mktemp -d "$kafka_home/lib.tmp.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	chmod 755 "$tmp"
	start=$SECONDS
	mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" ||
		die "mvn could not fetch org.apache.kafka:kafka_2.13:$kafka_version (is Maven Central reachable?)"
	for want in "kafka_2.13-$kafka_version.jar" "kafka-clients-$kafka_version.jar" \
		"kafka-tools-$kafka_version.jar" 'log4j-core-*.jar' 'log4j-slf4j-impl-*.jar' 'slf4j-api-*.jar'; do
		compgen -G "$tmp/$want" >/dev/null || die "mvn finished but $want is missing from the download"
	done
	# Prove the jars load on this Java before calling them complete.
	java -cp "$tmp/*" kafka.tools.StorageTool random-uuid >/dev/null ||
		die "the Kafka jars do not run on this java (kafka.tools.StorageTool random-uuid failed)"
	printf '%s\n' "$pom_sum" >"$tmp/.fanout-complete"
	rm -rf "$lib"
	mv "$tmp" "$lib"
	trap - EXIT
	say "fetched $(ls "$lib"/*.jar | wc -l) jars in $((SECONDS - start))s"
fi
say "Kafka $kafka_version lib: $lib"

# ---------------------------------------------------------------- Python clients
req="$here/python/requirements.txt"
venv="$cache/pyclients"
py_marker="$venv/.fanout-complete"
req_sum="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -f "$py_marker" ] && [ "$(cat "$py_marker")" = "$req_sum" ]; then
	say "Python clients already installed in $venv"
else
	command -v python3 >/dev/null 2>&1 || die "python3 not found: the e2e tests produce with confluent-kafka's Python client"
	if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
		apt_install python3-venv || die "python3 has no venv module and python3-venv could not be installed"
	fi
	say "installing the Python clients of $req into $venv"
	start=$SECONDS
	rm -rf "$venv"
	python3 -m venv "$venv" || die "python3 -m venv $venv failed"
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$req" ||
		die "pip could not install $req (is PyPI reachable?)"
	"$venv/bin/python" -c 'from confluent_kafka.schema_registry.avro import AvroSerializer; import fastavro' ||
		die "the Python clients installed but do not import"
	printf '%s\n' "$req_sum" >"$py_marker"
	say "installed the Python clients in $((SECONDS - start))s"
fi
say "Python clients: $venv/bin/python"
