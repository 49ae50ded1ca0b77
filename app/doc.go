// Package app turns a loaded config into running parts: the Kafka client
// options, the dedupe store, the codec and tracing, each sink's runner
// (consumers + handler + sink); the only package that knows them all;
// cmd/fanout calls it.
//
// It owns the mapping from config to each package's Config (sinkConfig,
// the consumer settings of BuildSinks, the Redis client of BuildStore),
// the Kafka connection's security (TLS, SASL) and the words fanout uses to
// explain a refused connection (ExplainKafka, ProbeKafka), the start-time
// checks against the broker and the registry (CheckTopics, FitEventBytes,
// TypeProblems), Prepare (all of run's start sequence: the checks, the store,
// the runners) and RunAll, which runs the sinks until they have drained, and
// OpenPath, one sink's delivery path for replay and redrive.
//
// It must not know about flags, printing or the admin endpoint: cmd/fanout
// reads flags and prints; package admin serves what the Runners count.
// Secrets is the process's one Redactor: cmd/fanout adds each config's
// secrets to it, app applies it to parked records' error texts and spans.
package app
