// Package redisurl owns the syntax of Tandem's Redis URL (TANDEM_REDIS_URL)
// and turns one into a go-redis client: one server, a Redis Cluster or a
// Sentinel-managed master.
//
// # Syntax
//
// The scheme picks the kind of deployment; everything after it is go-redis's
// own URL syntax for that kind of client (redis.ParseURL,
// redis.ParseClusterURL, redis.ParseFailoverURL), including its query
// options (dial_timeout=, pool_size=, …), so go-redis's documentation applies
// as is. The one addition is that the cluster and sentinel forms accept
// several comma-separated hosts, the same as go-redis's addr= parameters.
//
//	redis://[user:pass@]host:port[/db]                  one server
//	redis+cluster://[user:pass@]host:port[,host:port…]  Redis Cluster: the hosts are seeds
//	redis+sentinel://[user:pass@]host:port[,host:port…][/db]?master_name=NAME[&password=…]
//	                                                    Sentinel: the hosts are sentinels;
//	                                                    user:pass are the sentinels' credentials,
//	                                                    username=/password= the master's
//
// rediss://, rediss+cluster:// and rediss+sentinel:// use TLS.
//
// # Cluster topology
//
// A cluster client reloads the slot map at least every
// ClusterStateReloadInterval (1s here, go-redis's default is 60s): go-redis
// reloads it at once on MOVED, but not when the master of a slot stops
// answering, so without this a node would keep dialling a failed master
// for up to a minute after its replica took over.
package redisurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kinds of deployment.
const (
	Single   = "single"
	Cluster  = "cluster"
	Sentinel = "sentinel"
)

// ClusterStateReloadInterval bounds how long a cluster client uses a slot
// map after a failover changed it.
const ClusterStateReloadInterval = time.Second

// Kind reports which kind of deployment a Redis URL names: Single, Cluster
// or Sentinel.
func Kind(rawURL string) string {
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch {
	case strings.HasSuffix(scheme, "+cluster"):
		return Cluster
	case strings.HasSuffix(scheme, "+sentinel"):
		return Sentinel
	}
	return Single
}

// NewClient returns a client for a Redis URL: a *redis.Client for one
// server, a *redis.ClusterClient for a cluster, and go-redis's failover
// client (a *redis.Client that asks the sentinels for the master) for
// Sentinel. Its connections are named "tandem" unless the URL's
// client_name= says otherwise.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	switch Kind(rawURL) {
	case Cluster:
		u, err := multiHost(rawURL, "+cluster")
		if err != nil {
			return nil, err
		}
		opt, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", clean(err))
		}
		if opt.ClientName == "" {
			opt.ClientName = "tandem"
		}
		opt.ClusterStateReloadInterval = ClusterStateReloadInterval
		return redis.NewClusterClient(opt), nil
	case Sentinel:
		u, err := multiHost(rawURL, "+sentinel")
		if err != nil {
			return nil, err
		}
		opt, err := redis.ParseFailoverURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", clean(err))
		}
		if opt.MasterName == "" {
			return nil, errors.New("redis url: a sentinel URL needs master_name=")
		}
		if opt.ClientName == "" {
			opt.ClientName = "tandem"
		}
		return redis.NewFailoverClient(opt), nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", clean(err))
	}
	if opt.ClientName == "" {
		opt.ClientName = "tandem"
	}
	return redis.NewClient(opt), nil
}

// multiHost turns "redis+cluster://u:p@h1:1,h2:2/x?q" into the URL go-redis
// parses: "redis://u:p@h1:1/x?q&addr=h2:2".
func multiHost(rawURL, suffix string) (string, error) {
	scheme, rest, _ := strings.Cut(rawURL, "://")
	scheme = strings.TrimSuffix(scheme, suffix)
	if scheme != "redis" && scheme != "rediss" {
		return "", fmt.Errorf("redis url: scheme %q: want redis%s or rediss%s", scheme+suffix, suffix, suffix)
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	list := strings.Split(hosts, ",")
	for _, h := range list {
		if h == "" {
			return "", errors.New("redis url: an empty host in the host list")
		}
		if len(list) > 1 {
			if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
				return "", fmt.Errorf("redis url: host %q: give host:port for each of several hosts", h)
			}
		}
	}
	u, err := url.Parse(scheme + "://" + userinfo + list[0] + tail)
	if err != nil {
		return "", fmt.Errorf("redis url: %w", clean(err))
	}
	if len(list) > 1 {
		q := u.Query()
		for _, h := range list[1:] {
			q.Add("addr", h)
		}
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// clean drops the URL a *url.Error quotes: it may hold a password.
func clean(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Redact drops passwords from a Redis URL for logging: the userinfo's and a
// password= query parameter's.
func Redact(u string) string {
	if j := strings.Index(u, "://"); j >= 0 {
		rest := u[j+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if i := strings.LastIndex(rest[:end], "@"); i >= 0 {
			u = u[:j+3] + "***" + rest[i:]
		}
	}
	if i := strings.IndexByte(u, '?'); i >= 0 {
		parts := strings.Split(u[i+1:], "&")
		for k, p := range parts {
			if name, _, ok := strings.Cut(p, "="); ok && name == "password" {
				parts[k] = name + "=***"
			}
		}
		u = u[:i+1] + strings.Join(parts, "&")
	}
	return u
}
