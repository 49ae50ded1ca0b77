// Package services starts the real infrastructure that fanout's tests need — a
// redis-server and an Apache Kafka 4.x broker in KRaft mode — as child processes
// on free loopback ports, and stops them by PID when the test ends.
//
// It owns process lifecycle and readiness checks only; it must not know about
// fanout's delivery logic. Binaries and jars are installed by e2e/install.sh
// (called by `make test`); when one is missing a test fails with a message that
// names the install step, it never skips silently.
package services
