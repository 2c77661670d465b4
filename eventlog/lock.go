package eventlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/eventlog/model"
)

// A workspace's lock ({ws:ID}:lock) is a redsync mutex. redsync has no
// fencing token: the fence ({ws:ID}:fence, AcquireEpoch) is what keeps an
// ex-owner from writing, checked inside every owner script.

type locker struct{ rs *redsync.Redsync }

func newLocker(rdb redis.UniversalClient) locker {
	return locker{rs: redsync.New(goredis.NewPool(rdb))}
}

// Lock is one workspace's lock, taken or not.
type Lock struct{ mu *redsync.Mutex }

// ErrLockTaken is returned by TryLock when another node holds the lock.
var ErrLockTaken = errors.New("lock held elsewhere")

// NewLock returns the lock of ws with expiry ttl (not taken yet).
func (s *Store) NewLock(ws string, ttl time.Duration) (model.Lock, error) {
	if err := checkIDs(ws); err != nil {
		return nil, err
	}
	return &Lock{mu: s.locks.rs.NewMutex(LockKey(ws),
		redsync.WithExpiry(ttl),
		redsync.WithTries(1),
		redsync.WithTimeoutFactor(0.05))}, nil
}

// TryLock takes the lock once, without waiting.
func (l *Lock) TryLock(ctx context.Context) error {
	if err := l.mu.TryLockContext(ctx); err != nil {
		var taken *redsync.ErrTaken
		if errors.As(err, &taken) || errors.Is(err, redsync.ErrFailed) {
			return fmt.Errorf("%w: %w", ErrLockTaken, err)
		}
		return fmt.Errorf("lock: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// Extend extends the lock by its expiry; it fails when the lock expired
// or was taken (redsync cannot tell which).
func (l *Lock) Extend(ctx context.Context) error {
	ok, err := l.mu.ExtendContext(ctx)
	if err != nil {
		return fmt.Errorf("lock extension: %w", err)
	}
	if !ok {
		return errors.New("lock extension: not extended")
	}
	return nil
}

// Unlock releases the lock, if it is still this one's.
func (l *Lock) Unlock(ctx context.Context) error {
	_, err := l.mu.UnlockContext(ctx)
	return err
}
