package node

import (
	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/redisurl"
)

// NewRedis returns a client for a Redis URL: one server (redis://), a Redis
// Cluster (redis+cluster://) or a Sentinel-managed master
// (redis+sentinel://); package redisurl has the syntax.
func NewRedis(url string) (redis.UniversalClient, error) { return redisurl.NewClient(url) }

// RedactURL drops passwords from a Redis URL for logging.
func RedactURL(u string) string { return redisurl.Redact(u) }
