// Package topics creates the topics a config needs: kafka.topic and, for
// every sink, its dead-letter topic and retry-tier topics ([Ensure]; `fanout
// topics ensure` is its command). Existing topics are left as they are.
//
// topics must not know how the topics are consumed or written; the names
// come from config (which derives them through naming).
package topics
