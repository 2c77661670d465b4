package chaos

import (
	"fmt"
	"strconv"
	"strings"
)

// nginxConf is the fault campaign's load balancer (and the end-to-end
// tests'): round robin over the nodes, no stickiness, buffering off for
// SSE. deploy/nginx.conf makes the same choices for the same reasons.
const nginxConf = `# The fault campaign's load balancer: round robin over the nodes, no
# stickiness, buffering off for SSE. deploy/nginx.conf makes the same
# choices for the same reasons.
worker_processes 1;
pid {{DIR}}/nginx.pid;
error_log {{DIR}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{DIR}}/tmp/body;
  proxy_temp_path {{DIR}}/tmp/proxy;
  fastcgi_temp_path {{DIR}}/tmp/fastcgi;
  uwsgi_temp_path {{DIR}}/tmp/uwsgi;
  scgi_temp_path {{DIR}}/tmp/scgi;
  upstream tandem {
    # Every server has max_fails=0: nginx never takes a node out of
    # rotation. With max_fails=1 fail_timeout=2s a node SIGSTOPped for a few
    # seconds (its timeouts) and a draining node (its 503s) were all marked
    # down at once and nginx answered 502 "no live upstreams" for 2 s. A
    # node that is really down costs a refused connect and a try of the
    # next one (proxy_next_upstream below), not an outage.
{{SERVERS}}    keepalive 32;
  }
  server {
    listen 127.0.0.1:{{PORT}};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # The client's Host, not the upstream's name: a node without
    # authentication serves loopback host names only.
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-Proto $scheme;
    # SSE: no buffering, long reads (a stream carries a keepalive every 15 s).
    proxy_buffering off;
    proxy_cache off;
    # Short: a node that does not accept is skipped quickly.
    proxy_connect_timeout 2s;
    proxy_read_timeout 1h;
    proxy_send_timeout 1h;
    # A node that is down or shutting down (refused, 502, 503): try the
    # next one, at most 3 of them.
    proxy_next_upstream error timeout http_502 http_503;
    proxy_next_upstream_tries 3;

    location / {
      proxy_pass http://tandem;
    }
    # Session streams. A WHATWG EventSource gives up for good on any
    # status but 200; the nodes answer a transient fault with 200 and
    # retry: themselves, and this is the last line of defence when no node
    # answered at all (every try refused, timed out or 502/503): the same
    # 200 retry: from nginx, so the browser reconnects with its
    # Last-Event-ID. Only 502/503/504 are intercepted: 4xx answers (401,
    # 403, 404, 410, 429) reach the client as they are, and the JSON routes
    # (location /) keep their real statuses.
    location ~ /events/stream$ {
      proxy_pass http://tandem;
      proxy_intercept_errors on;
      error_page 502 503 504 = @sse_retry;
    }
    location @sse_retry {
      default_type text/event-stream;
      add_header Cache-Control no-cache always;
      return 200 "retry: 1000\n\n: no node could serve the stream, reconnect\n\n";
    }
  }
}
`

// NginxConfig renders the load balancer's configuration: nginx keeps its
// pid, logs and temporary files under dir, listens on 127.0.0.1:port and
// balances over upstreams (host:port).
func NginxConfig(dir string, port int, upstreams []string) string {
	var servers strings.Builder
	for _, u := range upstreams {
		// max_fails=0: see the comment in the upstream block.
		fmt.Fprintf(&servers, "    server %s max_fails=0;\n", u)
	}
	return strings.NewReplacer("{{DIR}}", dir, "{{PORT}}", strconv.Itoa(port), "{{SERVERS}}", servers.String()).Replace(nginxConf)
}
