package eventlog

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisErr wraps err from a Redis call made for op. It is the one place
// errors of Redis and of the scripts are decoded: a stale-writer reply of
// the fence check (lua/fence.lua) becomes ErrStaleWriter, an error Redis
// replied with for good stays itself, and everything else (no connection,
// a timeout, a server loading or failing over) is ErrUnavailable.
func redisErr(op string, err error) error {
	if isStale(err) {
		return fmt.Errorf("%s: %w (%s)", op, ErrStaleWriter, err.Error())
	}
	if err != nil {
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "TANDEMREWOUND "); ok {
			var re RewoundError
			if _, perr := fmt.Sscanf(rest, "%s %d %d", &re.Session, &re.Head, &re.Known); perr == nil {
				return fmt.Errorf("%s: %w", op, &re)
			}
		}
		if strings.HasPrefix(msg, "TANDEMWITHDRAWN ") {
			return fmt.Errorf("%s: %w (%s)", op, ErrWithdrawn, msg)
		}
		if strings.HasPrefix(msg, "TANDEMDUP ") {
			return fmt.Errorf("%s: %w (%s)", op, ErrDuplicate, msg)
		}
	}
	var re redis.Error
	if errors.As(err, &re) && !transient(re.Error()) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// isStale reports whether err is the fence check's stale-writer reply.
func isStale(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "TANDEMSTALE")
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
