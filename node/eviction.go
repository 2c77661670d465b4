package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrEvictionPolicy is returned by Run when Redis may evict keys and
// Config.AllowEviction is not set.
var ErrEvictionPolicy = errors.New("redis may evict keys")

// CheckEvictionPolicy reads maxmemory-policy from Redis (every master of a
// cluster) and fails with ErrEvictionPolicy unless it is noeviction: any
// other policy lets Redis drop keys under memory pressure (allkeys-*: any
// key, the inbox and the event streams included; volatile-*: keys with an
// expiry, which the locks, owner records and idempotency keys are), and
// Tandem's guarantees rest on every key it wrote staying until it removes
// it. With allow, such a policy is logged loudly instead. A Redis whose
// CONFIG command is disabled or renamed (managed services), or that does
// not answer, is logged as not checked, and the node starts.
func CheckEvictionPolicy(ctx context.Context, rdb redis.UniversalClient, allow bool, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	policies, err := evictionPolicies(ctx, rdb)
	if err != nil {
		logger.Warn("could not check Redis's maxmemory-policy; make sure it is noeviction, or Redis may drop accepted prompts, events and locks under memory pressure", slog.Any("err", err))
		return nil
	}
	var bad []string
	for addr, p := range policies {
		if p != "noeviction" {
			bad = append(bad, addr+": "+p)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	err = fmt.Errorf("%w: maxmemory-policy %s; Tandem needs noeviction (an evicted inbox, stream, lock or fence loses prompts or breaks single-writer); set maxmemory-policy noeviction, or start with TANDEM_ALLOW_EVICTION=1 (--allow-eviction) to run anyway",
		ErrEvictionPolicy, strings.Join(bad, ", "))
	if !allow {
		return err
	}
	logger.Error("RUNNING WITH A REDIS THAT MAY EVICT KEYS (TANDEM_ALLOW_EVICTION is set): accepted prompts, events, locks and fences may be lost under memory pressure", slog.Any("err", err))
	return nil
}

// evictionPolicies returns the maxmemory-policy of each master by address.
func evictionPolicies(ctx context.Context, rdb redis.UniversalClient) (map[string]string, error) {
	out := map[string]string{}
	var mu sync.Mutex
	get := func(ctx context.Context, c *redis.Client) error {
		v, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil {
			return fmt.Errorf("CONFIG GET maxmemory-policy on %s: %w", c.Options().Addr, err)
		}
		p, ok := v["maxmemory-policy"]
		if !ok {
			return fmt.Errorf("CONFIG GET maxmemory-policy on %s: no value", c.Options().Addr)
		}
		mu.Lock()
		out[c.Options().Addr] = p
		mu.Unlock()
		return nil
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		if err := c.ForEachMaster(ctx, get); err != nil {
			return nil, err
		}
	case *redis.Client:
		if err := get(ctx, c); err != nil {
			return nil, err
		}
	default:
		v, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil {
			return nil, fmt.Errorf("CONFIG GET maxmemory-policy: %w", err)
		}
		p, ok := v["maxmemory-policy"]
		if !ok {
			return nil, errors.New("CONFIG GET maxmemory-policy: no value")
		}
		out["redis"] = p
	}
	return out, nil
}
