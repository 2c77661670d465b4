package eventlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// quotaScript takes a request from a rate bucket (lua/quota.lua).
var quotaScript = loadScript("quota", false)

// QuotaKey is the rate bucket of one user's commands of one kind in ws.
// The user is hashed: any string, fixed length.
func QuotaKey(ws, kind, user string) string {
	sum := sha256.Sum256([]byte(user))
	return tag(ws) + ":quota:" + kind + ":" + hex.EncodeToString(sum[:12])
}

// TakeQuota takes one request of kind by user in ws from a token bucket
// of rate per second and burst, kept in Redis so that it holds across
// nodes. It returns 0 when the request may go on, else how long to wait.
func (l *Log) TakeQuota(ctx context.Context, ws, kind, user string, rate float64, burst int) (time.Duration, error) {
	return l.quota(ctx, ws, kind, user, rate, burst, "take")
}

// RefundQuota gives back a request TakeQuota let through and that was
// then refused: only what is carried out counts.
func (l *Log) RefundQuota(ctx context.Context, ws, kind, user string, rate float64, burst int) error {
	_, err := l.quota(ctx, ws, kind, user, rate, burst, "refund")
	return err
}

func (l *Log) quota(ctx context.Context, ws, kind, user string, rate float64, burst int, op string) (time.Duration, error) {
	if err := checkIDs(ws); err != nil {
		return 0, err
	}
	if rate <= 0 {
		return 0, nil
	}
	interval := max(time.Millisecond, time.Duration(float64(time.Second)/rate))
	tolerance := interval * time.Duration(max(burst, 1)-1)
	ms, err := quotaScript.Run(ctx, l.rdb, []string{QuotaKey(ws, kind, user)}, interval.Milliseconds(), tolerance.Milliseconds(), op).Int64()
	if err != nil {
		return 0, redisErr(fmt.Sprintf("quota %s/%s", ws, kind), err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
