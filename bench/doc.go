// Command bench measures fanout end to end, as issue 5 asks: the real
// `fanout run` binary as a child process, a Kafka broker (kfake in this
// process by default, a real Apache Kafka 4.x broker with -kafka real), a real
// redis-server for dedupe, and real HTTP targets on 127.0.0.1 with a fixed
// latency, fed with realistic user.registered Avro events.
//
// Per run it reports events/s per sink, end-to-end latency p50/p99/p999
// (record timestamp → target receipt), CPU seconds per 1,000 events (the
// fanout process's rusage once it exited) and its peak RSS (VmHWM), and in the
// same run the ceilings to compare with: raw consume (franz-go polling the
// same topic), raw HTTP (net/http at the same concurrency against the same
// kind of target) and the sequential baseline (decode → claim → POST → done →
// commit, one event at a time). Each target of issue 5 becomes a PASS/MISS
// line; they are a bar to measure against, not a gate. The -batched scenarios
// run a sink with batch.max_events (CloudEvents batch requests) next to the
// unbatched run and its ceiling; their rows are informational, no targets.
//
//	go run ./bench                        # every scenario, 5–10 minutes on 2 cores
//	go run ./bench -quick                 # smaller sizes, ~2 minutes
//	go run ./bench -scenario key-order    # one scenario (comma-separated list)
//	go run ./bench -kafka real -md docs/bench.md -json bench.json
//
// The bench is a tool, not a test: bench_test.go only checks one tiny run for
// consistency.
package main
