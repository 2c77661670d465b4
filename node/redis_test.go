package node_test

import (
	"testing"

	"github.com/tandem-dev/tandem/internal/redistest"
)

// forEachRedis runs test as subtests "single" (one redis-server) and
// "cluster" (a Redis Cluster of three masters), with the node's Redis URL
// for each: the workspace scripts, the lock and the doorbell work the same
// on both.
func forEachRedis(t *testing.T, test func(t *testing.T, redisURL string)) {
	t.Run("single", func(t *testing.T) {
		test(t, redistest.Start(t, redistest.Options{}).URL())
	})
	t.Run("cluster", func(t *testing.T) {
		test(t, redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3}).URL())
	})
}
