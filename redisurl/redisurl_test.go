package redisurl_test

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/tandem-dev/tandem/redisurl"
)

func TestNewClient(t *testing.T) {
	t.Run("OK single", func(t *testing.T) {
		c, err := redisurl.NewClient("redis://:pw@10.0.0.1:6380/2?dial_timeout=3s")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := c.(*redis.Client).Options()
		if o.Addr != "10.0.0.1:6380" || o.DB != 2 || o.Password != "pw" || o.ClientName != "tandem" || o.DialTimeout.String() != "3s" {
			t.Fatalf("options %+v", o)
		}
	})
	t.Run("OK cluster with a host list", func(t *testing.T) {
		c, err := redisurl.NewClient("redis+cluster://u:pw@h1:7000,h2:7001,[::1]:7002?addr=h4:7003&pool_size=7")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o := c.(*redis.ClusterClient).Options()
		if got := strings.Join(o.Addrs, " "); got != "h1:7000 h4:7003 h2:7001 [::1]:7002" && got != "h1:7000 h2:7001 [::1]:7002 h4:7003" {
			t.Fatalf("addrs %q", got)
		}
		if o.Username != "u" || o.Password != "pw" || o.PoolSize != 7 || o.ClusterStateReloadInterval != redisurl.ClusterStateReloadInterval || o.ClientName != "tandem" {
			t.Fatalf("options %+v", o)
		}
	})
	t.Run("OK cluster with TLS", func(t *testing.T) {
		c, err := redisurl.NewClient("rediss+cluster://h1:7000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if o := c.(*redis.ClusterClient).Options(); o.TLSConfig == nil || len(o.Addrs) != 1 {
			t.Fatalf("options %+v", o)
		}
	})
	t.Run("OK sentinel", func(t *testing.T) {
		c, err := redisurl.NewClient("redis+sentinel://su:spw@s1:26379,s2:26380/3?master_name=mymaster&password=mpw")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := c.(*redis.Client); !ok {
			t.Fatalf("sentinel client is a %T", c)
		}
	})
	for _, tc := range []struct{ name, url string }{
		{"ErrScheme", "redis+cluster+x://h:1"},
		{"ErrSchemeHTTP", "http+cluster://h:1"},
		{"ErrEmptyHost", "redis+cluster://h:1,,h2:2"},
		{"ErrHostWithoutPort", "redis+cluster://h1,h2:2"},
		{"ErrUnknownOption", "redis+cluster://h:1?nonsense=1"},
		{"ErrSentinelWithoutMaster", "redis+sentinel://s1:26379"},
		{"ErrSingleScheme", "http://h:1"},
		{"ErrSingleDB", "redis://h:1/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := redisurl.NewClient(tc.url)
			if err == nil {
				c.Close()
				t.Fatalf("NewClient(%q) succeeded", tc.url)
			}
		})
	}
	t.Run("ErrNoPasswordInError", func(t *testing.T) {
		for _, u := range []string{"redis+cluster://u:s3cret@h:1%zz", "redis://u:s3cret@h:1%zz", "redis+sentinel://u:s3cret@h:x/0?master_name=m"} {
			_, err := redisurl.NewClient(u)
			if err == nil || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("NewClient(%q): err = %v", u, err)
			}
		}
	})
}

func TestKind(t *testing.T) {
	for url, want := range map[string]string{
		"redis://h:1":             redisurl.Single,
		"rediss://h:1":            redisurl.Single,
		"unix:///tmp/r.sock":      redisurl.Single,
		"redis+cluster://h:1":     redisurl.Cluster,
		"rediss+cluster://h:1":    redisurl.Cluster,
		"redis+sentinel://h:1":    redisurl.Sentinel,
		"rediss+sentinel://h:1/0": redisurl.Sentinel,
	} {
		if got := redisurl.Kind(url); got != want {
			t.Errorf("Kind(%q) = %s, want %s", url, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:pw@h:1/0":                                  "redis://***@h:1/0",
		"redis+cluster://u:pw@h1:1,h2:2":                     "redis+cluster://***@h1:1,h2:2",
		"redis+sentinel://s:1?master_name=m&password=x&db=1": "redis+sentinel://s:1?master_name=m&password=***&db=1",
		"redis://h:1/0?client_name=a@b":                      "redis://h:1/0?client_name=a@b",
		"redis://h:1":                                        "redis://h:1",
	} {
		if got := redisurl.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever the URL, NewClient returns a client or an error (never
// panics), and an error never quotes the userinfo's password.
func FuzzNewClient(f *testing.F) {
	for _, s := range []string{
		"redis://:pw@h:1/0", "redis+cluster://u:pw@h1:1,h2:2?addr=h3:3", "redis+sentinel://s:1,s:2/0?master_name=m",
		"rediss+cluster://[::1]:1,[::1]:2", "redis+cluster://,", "redis+sentinel://@/?#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, scheme := range []string{"redis://", "redis+cluster://", "redis+sentinel://"} {
			c, err := redisurl.NewClient(scheme + "u:fuzzsecret@" + s)
			if err == nil {
				c.Close()
				continue
			}
			if strings.Contains(err.Error(), "fuzzsecret") {
				t.Fatalf("error quotes the password: %v", err)
			}
		}
		if c, err := redisurl.NewClient(s); err == nil {
			c.Close()
		}
	})
}
