package eventlog

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable wraps failures to reach Redis (a refused or broken
// connection, a timeout): the caller may retry later. Errors that Redis
// itself replied with are not wrapped in it.
var ErrUnavailable = errors.New("event log unavailable")

// redisErr wraps err from a Redis call made for op.
func redisErr(op string, err error) error {
	var re redis.Error
	if errors.As(err, &re) && !transient(re.Error()) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// transient reports whether a Redis error reply says "not now": a server
// loading its data, a failover or resharding in progress.
func transient(msg string) bool {
	for _, p := range []string{"LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "BUSY"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
