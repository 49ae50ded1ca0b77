// Package e2e holds fanout's end-to-end tests: a real Apache Kafka 4.x broker
// (KRaft, from Maven Central jars) and a real redis-server, both started by
// e2e/services; the fanout binary built from this tree and run as a separate
// process; real HTTP servers (sinktest.API) as the downstream APIs. `make e2e` runs them after
// e2e/install.sh has installed what the machine lacks.
package e2e
