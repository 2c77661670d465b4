package main

import (
	"strings"
	"testing"
)

// serve -h prints every flag with its default, and a flag error the
// complaint: the secrets set in the environment are never among them.
func TestServeHelpPrintsNoSecret(t *testing.T) {
	secrets := map[string]string{
		"TANDEM_JWT_SECRET":    "jwt-secret-value-0123456789abcdef0123",
		"TANDEM_REDIS_URL":     "redis://:redis-password-value@10.0.0.1:6379/0",
		"TANDEM_SANDBOX_TOKEN": "sandbox-token-value",
		"TANDEM_METRICS_TOKEN": "metrics-token-value",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	for _, args := range [][]string{{"-h"}, {"-no-such-flag"}, {"-lock-ttl", "bad"}, {"-jwt-secret"}} {
		code, stdout, stderr := runCLI(append([]string{"serve"}, args...)...)
		out := stdout + stderr
		if args[0] == "-h" {
			if code != 0 || !strings.Contains(stdout, "-jwt-secret") || !strings.Contains(stdout, "never printed") {
				t.Errorf("%v: exit %d, the flags were not printed: %s", args, code, out)
			}
		} else if code != 2 || !strings.Contains(stderr, "usage: tandem serve") {
			t.Errorf("%v: exit %d, no short usage: %s", args, code, out)
		}
		for k, v := range secrets {
			if strings.Contains(out, v) {
				t.Errorf("%v printed %s", args, k)
			}
			for _, part := range []string{"redis-password-value", "jwt-secret-value"} {
				if strings.Contains(out, part) {
					t.Errorf("%v printed part of %s", args, k)
				}
			}
		}
	}
	// The variables still apply, and a flag given wins.
	t.Setenv("TANDEM_AUTH", "jwt")
	t.Setenv("TANDEM_SANDBOX_URL", "http://127.0.0.1:2468")
	c, err := parseServeConfig([]string{"-sandbox-token", "from-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if c.JWTSecret != secrets["TANDEM_JWT_SECRET"] || c.RedisURL != secrets["TANDEM_REDIS_URL"] || c.SandboxToken != "from-flag" {
		t.Errorf("secrets not applied: %q %q %q", c.JWTSecret, c.RedisURL, c.SandboxToken)
	}
	if c.MetricsToken != secrets["TANDEM_METRICS_TOKEN"] {
		t.Errorf("metrics token %q", c.MetricsToken)
	}
}

// jwt with the local sandbox (every member's agent on the node's host)
// is refused unless explicitly allowed; pprof only on loopback unless
// forced.
func TestRiskyCombinationsRefused(t *testing.T) {
	t.Setenv("TANDEM_JWT_SECRET", "jwt-secret-value-0123456789abcdef0123")
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-auth", "jwt"}, false},
		{[]string{"-auth", "jwt", "-sandbox", "local", "-sandbox-url", "http://x:1"}, false},
		{[]string{"-auth", "jwt", "-sandbox-local-with-jwt"}, true},
		{[]string{"-auth", "jwt", "-sandbox-url", "http://sandbox:2468"}, true},
		{[]string{"-auth", "none"}, true},
		{[]string{"-pprof-addr", "0.0.0.0:6060"}, false},
		{[]string{"-pprof-addr", ":6060"}, false},
		{[]string{"-pprof-addr", "0.0.0.0:6060", "-pprof-allow-remote"}, true},
		{[]string{"-pprof-addr", "127.0.0.1:6060"}, true},
		{[]string{"-sandbox-env", "ANTHROPIC_API_KEY,OPENAI_API_KEY"}, true},
		{[]string{"-sandbox-env", "TANDEM_JWT_SECRET"}, false},
		{[]string{"-sandbox-env", "HOME"}, false},
		{[]string{"-sandbox-allow", "10.0.0.*"}, false},
	} {
		_, err := parseServeConfig(tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("%v: %v", tc.args, err)
		}
	}
}
