// Package dedupe is fanout's idempotency store: it decides whether one event may
// be delivered to one sink now, so that a redelivery after a crash or a rebalance
// becomes a no-op instead of a second call to the API.
//
// It owns the three states of a key and their transitions:
//
//	absent  --Claim(token, lease)-->  pending(token), expires after lease
//	pending --Done(ttl)----------->   done, expires after ttl
//	pending --Release(token)------>   absent (only the owner's token releases)
//	pending --lease expires------->   absent (the owner died or stalled)
//	done    --ttl expires--------->   absent
//
// Claim reports Claimed (the caller owns the key and may deliver), Duplicate
// (done already: skip and count a dedupe hit) or Busy (another owner holds a
// live lease: wait and retry; never deliver concurrently). A Claim or Release
// that finds something other than what it asked for changes nothing.
//
// There are two implementations with the same semantics, kept honest by one
// contract test suite: Redis (go-redis UniversalClient, so a single node, a
// Sentinel group or a Cluster) for production, and Memory for the embedded demo
// and for tests. Both also implement Batcher, which claims or finishes many keys
// in one round trip for the hot path.
//
// Coalescer wraps either one for the hot path, where each record in flight
// claims and finishes its key on a goroutine of its own: while one Claim is
// out, the Claims that arrive queue and then go in one ClaimBatch (Done calls
// likewise, with DoneBatch), so the round trips follow the load rather than
// the record count, and the callers' per-record code and the Store contract
// stay as they are. It runs the same contract suite.
//
// Errors: every connectivity or timeout failure of the backing store wraps
// ErrUnavailable, so the caller can apply its sink's fail-open or fail-closed
// policy; a cancelled or expired ctx returns the ctx error instead. Any other
// error (an invalid argument, or a server reply such as WRONGTYPE or NOAUTH)
// means misuse or misconfiguration and does not go away by retrying.
//
// The package must not know about Kafka or HTTP: keys are opaque strings built by
// Key from a sink name and an event id, and what "delivering" means is the
// caller's business.
package dedupe
