// Package compose holds fanout's Docker Compose stack for users who have
// Docker: Kafka (KRaft), Redis, Jaeger, the worked example's three APIs and
// fanout built from compose/Dockerfile. These machines cannot run containers;
// compose_test.go validates the file with docker-compose instead.
package compose
