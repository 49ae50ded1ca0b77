package dedupe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults a caller applies when its configuration leaves them out
// (config's sinks[].dedupe, pipeline.Config).
const (
	// DefaultDoneTTL is how long a delivered key stays done.
	DefaultDoneTTL = 7 * 24 * time.Hour
	// DefaultLease is how long a claim holds a key before it expires
	// unless renewed.
	DefaultLease = 30 * time.Second
)

// Outcome is the result of a Claim.
type Outcome int

const (
	// Claimed: the caller owns the key and may deliver. It is also the answer
	// to the current owner claiming again with the same token (a retried claim
	// recognising its own first write); such a claim does not extend the lease.
	Claimed Outcome = iota + 1
	// Duplicate: the key is done already. Skip the event and count a dedupe hit.
	Duplicate
	// Busy: the key is pending under another owner's live lease. Wait and retry
	// (the lease expires if the owner died); never deliver concurrently.
	Busy
)

// String returns "claimed", "duplicate" or "busy", for logs and metric labels.
func (o Outcome) String() string {
	switch o {
	case Claimed:
		return "claimed"
	case Duplicate:
		return "duplicate"
	case Busy:
		return "busy"
	default:
		return "Outcome(" + strconv.Itoa(int(o)) + ")"
	}
}

// Store is the idempotency store. Keys come from Key(sink, eventID).
type Store interface {
	// Claim makes key pending under token for lease, if the key is absent.
	// lease must be at least 1ms; it is truncated to whole milliseconds.
	Claim(ctx context.Context, key, token string, lease time.Duration) (Outcome, error)
	// Done marks key done for ttl, whoever holds it: the event was delivered.
	// ttl must be at least 1ms; it is truncated to whole milliseconds.
	Done(ctx context.Context, key string, ttl time.Duration) error
	// Release deletes key if it is pending under token, and does nothing
	// otherwise (another owner's claim, a done key, an absent key).
	Release(ctx context.Context, key, token string) error
}

// Batcher is implemented by stores that can claim or finish many keys in one
// round trip. Callers on the hot path type-assert a Store to it.
type Batcher interface {
	// ClaimBatch claims every request in order, as if by consecutive Claim
	// calls, and returns one Outcome per request. On error it returns no
	// outcomes; keys it did claim are reclaimed by retrying with the same
	// tokens (the owner's own claim answers Claimed) or expire with their lease.
	ClaimBatch(ctx context.Context, reqs []ClaimRequest) ([]Outcome, error)
	// DoneBatch marks every key done for ttl, as if by consecutive Done calls.
	DoneBatch(ctx context.Context, keys []string, ttl time.Duration) error
}

// Extender is implemented by stores that can renew a claim's lease, so a
// delivery that outlives its lease keeps its key, and a short lease frees the
// keys of a crashed owner quickly.
type Extender interface {
	// Extend resets key's lease to lease from now if key is still pending
	// under token, and reports whether it was. It never revives an expired,
	// released or done key.
	Extend(ctx context.Context, key, token string, lease time.Duration) (bool, error)
}

// ClaimRequest is one Claim of a ClaimBatch.
type ClaimRequest struct {
	Key   string
	Token string
	Lease time.Duration
}

// ErrUnavailable is wrapped by every error caused by the backing store being
// unreachable, slow or temporarily refusing writes: a dial or read failure, a
// timeout, a closed client, or a transient server state (LOADING, READONLY,
// MASTERDOWN, CLUSTERDOWN, TRYAGAIN, BUSY, OOM, max clients). The caller applies
// its fail-open or fail-closed policy. A cancelled or expired ctx is reported as
// the ctx error, never as ErrUnavailable.
var ErrUnavailable = errors.New("dedupe: store unavailable")

// Key returns the store key of one event for one sink:
//
//	<sink>:<eventID>
//
// where the sink name has every '%' replaced by "%25" and every ':' by "%3A".
// Valid sink names ([a-z0-9_-]) are unchanged, so keys read naturally in
// redis-cli ("profile:0b6f…"); the escaping makes Key injective for any input,
// since the first ':' always ends the sink. The event id is used verbatim and
// may contain anything.
func Key(sink, eventID string) string {
	if strings.ContainsAny(sink, "%:") {
		sink = strings.NewReplacer("%", "%25", ":", "%3A").Replace(sink)
	}
	return sink + ":" + eventID
}

// NewToken returns a random owner token: 16 bytes from crypto/rand, hex encoded.
// Use one per process and attempt, or finer, as the caller likes; two owners
// must never share a token.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}

// validClaim checks the arguments of one Claim and returns the lease as stored:
// truncated to whole milliseconds, the resolution of Redis's PX.
func validClaim(token string, lease time.Duration) (time.Duration, error) {
	if token == "" {
		return 0, errors.New("dedupe: empty token")
	}
	return validDuration("lease", lease)
}

// checkClaim is validClaim followed by ctx.Err: the preamble of every Claim
// and Extend.
func checkClaim(ctx context.Context, token string, lease time.Duration) (time.Duration, error) {
	lease, err := validClaim(token, lease)
	if err != nil {
		return 0, err
	}
	return lease, ctx.Err()
}

// checkClaims checks every request of a ClaimBatch, then ctx, and returns the
// leases as stored: a batch with one bad request claims none.
func checkClaims(ctx context.Context, reqs []ClaimRequest) ([]time.Duration, error) {
	leases := make([]time.Duration, len(reqs))
	for i, r := range reqs {
		lease, err := validClaim(r.Token, r.Lease)
		if err != nil {
			return nil, fmt.Errorf("claim batch request %d (%s): %w", i, r.Key, err)
		}
		leases[i] = lease
	}
	return leases, ctx.Err()
}

// checkRelease checks the arguments of one Release, then ctx.
func checkRelease(ctx context.Context, token string) error {
	if token == "" {
		return errors.New("dedupe: empty token")
	}
	return ctx.Err()
}

// checkDuration is validDuration followed by ctx.Err: the preamble of Done,
// DoneBatch and Enter.
func checkDuration(ctx context.Context, name string, d time.Duration) (time.Duration, error) {
	d, err := validDuration(name, d)
	if err != nil {
		return 0, err
	}
	return d, ctx.Err()
}

func validDuration(name string, d time.Duration) (time.Duration, error) {
	if d < time.Millisecond {
		return 0, fmt.Errorf("dedupe: %s %v is below 1ms", name, d)
	}
	return d.Truncate(time.Millisecond), nil
}
