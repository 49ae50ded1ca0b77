// Package status answers "how far behind is each sink?" from the broker
// alone: for every sink its consumer group on the main topic (state,
// members, lag), each retry tier's group (records still owed in that tier)
// and its dead-letter topic (records parked there). [Sinks] returns the rows;
// `fanout status` prints them. It only reads, so it is safe while fanout runs.
//
// status must not know how sinks deliver or how the rows are printed; the
// names of groups and topics come from config and naming.
package status
