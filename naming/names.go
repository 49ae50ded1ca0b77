// Package naming spells fanout's consumer group and topic names. Every place
// that derives one (config defaults, the commands, the sink runner) calls
// these functions, so a name is written once.
//
//	group of a sink           <prefix><sink>
//	group of its retry tier n <prefix><sink>.retry.<n>
//	group of dlq redrive      <prefix><sink>.redrive
//	group of a replay         <prefix><sink>.replay.<id>
//	retry tier topic n        <topic>.<sink>.retry.<n>
//	dead-letter topic         <topic>.<sink>.dlq
//
// Tiers are numbered from 1.
package naming

import "strconv"

// DefaultGroupPrefix is kafka.group_prefix's default.
const DefaultGroupPrefix = "fanout."

// Group is the consumer group of sink's main topic.
func Group(prefix, sink string) string { return prefix + sink }

// TierGroup is the consumer group of sink's retry tier n (from 1).
func TierGroup(prefix, sink string, n int) string {
	return Group(prefix, sink) + ".retry." + strconv.Itoa(n)
}

// RedriveGroup holds how far `dlq redrive` has examined sink's DLQ.
func RedriveGroup(prefix, sink string) string { return Group(prefix, sink) + ".redrive" }

// ReplayGroup holds the progress of replay id of sink.
func ReplayGroup(prefix, sink, id string) string { return Group(prefix, sink) + ".replay." + id }

// TierTopic is the default topic of sink's retry tier n (from 1).
func TierTopic(topic, sink string, n int) string {
	return topic + "." + sink + ".retry." + strconv.Itoa(n)
}

// DLQTopic is the default dead-letter topic of sink.
func DLQTopic(topic, sink string) string { return topic + "." + sink + ".dlq" }
