package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The deployment files cannot run here (no Docker, no Kubernetes); this
// test keeps them honest by reading them: every YAML file parses, every
// TANDEM_* variable they set is one `tandem serve` knows, the settings
// they give a node are accepted by the node's own parser, probes and ports
// line up, and shutdown has the time it needs.

const repo = "../.."

// serveVariables returns the TANDEM_* variables of `tandem serve`, read
// from its usage text.
func serveVariables(t *testing.T) map[string]bool {
	t.Helper()
	code, out, stderr := runCLI("serve", "-h")
	if code != 0 {
		t.Fatalf("serve -h: exit %d: %s", code, stderr)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$(TANDEM_[A-Z0-9_]+)`).FindAllStringSubmatch(out, -1) {
		vars[m[1]] = true
	}
	if len(vars) < 20 || !vars["TANDEM_REDIS_URL"] || !vars["TANDEM_ADDR"] {
		t.Fatalf("serve -h lists %d variables: %s", len(vars), out)
	}
	return vars
}

// docs parses every YAML document of a file.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
}

// get walks a decoded document: get(d, "spec", "template", 0, "name").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// checkNodeConfig has the node's parser accept env (as the node would get
// it) and returns the parsed configuration.
func checkNodeConfig(t *testing.T, where string, env map[string]string, known map[string]bool) config {
	t.Helper()
	var names []string
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if strings.HasPrefix(k, "TANDEM_") && !known[k] {
			t.Errorf("%s sets %s, which tandem serve does not know", where, k)
		}
	}
	for k := range known {
		t.Setenv(k, "") // restored by a cleanup
		os.Unsetenv(k)  // only what the file sets counts
	}
	for _, k := range names {
		t.Setenv(k, env[k])
	}
	cfg, err := parseServeConfig(nil)
	if err != nil {
		t.Fatalf("%s: the node refuses its configuration: %v", where, err)
	}
	return cfg
}

func TestYAMLFilesParse(t *testing.T) {
	var files []string
	filepath.WalkDir(filepath.Join(repo, "deploy"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	files = append(files, filepath.Join(repo, "docker-compose.yml"))
	if len(files) < 8 {
		t.Fatalf("only %d YAML files: %v", len(files), files)
	}
	for _, f := range files {
		if len(docs(t, f)) == 0 {
			t.Errorf("%s has no document", f)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	known := serveVariables(t)
	byKind := map[string]map[string]any{} // "Kind/name"
	dir := filepath.Join(repo, "deploy", "k8s")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		for _, d := range docs(t, filepath.Join(dir, e.Name())) {
			byKind[str(d["kind"])+"/"+str(get(d, "metadata", "name"))] = d
		}
	}
	for _, f := range get(byKind["Kustomization/"], "resources").([]any) {
		if _, err := os.Stat(filepath.Join(dir, str(f))); err != nil {
			t.Errorf("kustomization lists %s: %v", f, err)
		}
	}
	dep := byKind["Deployment/tandem"]
	cm := byKind["ConfigMap/tandem"]
	secret := byKind["Secret/tandem"]
	if dep == nil || cm == nil || secret == nil || byKind["Service/tandem"] == nil || byKind["PodDisruptionBudget/tandem"] == nil {
		t.Fatalf("missing objects; have %v", keys(byKind))
	}
	pod := get(dep, "spec", "template")
	labels := get(pod, "metadata", "labels").(map[string]any)
	c := get(pod, "spec", "containers", 0)

	t.Run("OK environment", func(t *testing.T) {
		env := map[string]string{}
		for k, v := range get(cm, "data").(map[string]any) {
			env[k] = str(v)
		}
		for _, e := range get(c, "env").([]any) {
			name := str(get(e, "name"))
			switch {
			case get(e, "value") != nil:
				env[name] = str(get(e, "value"))
			case get(e, "valueFrom", "secretKeyRef") != nil:
				ref := get(e, "valueFrom", "secretKeyRef")
				v, ok := get(secret, "stringData", str(get(ref, "key"))).(string)
				if str(get(ref, "name")) != "tandem" || !ok {
					t.Errorf("%s comes from a secret key the example Secret lacks: %v", name, ref)
				}
				env[name] = v
			case str(get(e, "valueFrom", "fieldRef", "fieldPath")) == "metadata.name":
				env[name] = "tandem-5d8c7b9f4-x2x7q"
			default:
				t.Errorf("%s: unexpected source %v", name, e)
			}
		}
		if str(get(c, "envFrom", 0, "configMapRef", "name")) != "tandem" {
			t.Error("the container does not read the ConfigMap")
		}
		if env["TANDEM_NODE_ID"] == "" || env["TANDEM_ADDR"] != "0.0.0.0:8080" || env["TANDEM_AUTH"] != "jwt" || env["TANDEM_JWT_SECRET"] == "" {
			t.Errorf("node id from the pod name, 0.0.0.0:8080, jwt and its secret are required: %v", env)
		}
		cfg := checkNodeConfig(t, "the Deployment", env, known)

		// Shutdown fits in the grace period.
		grace, _ := get(pod, "spec", "terminationGracePeriodSeconds").(int)
		pre, _ := get(c, "lifecycle", "preStop", "sleep", "seconds").(int)
		if pre < 3 {
			t.Errorf("preStop sleep %ds: endpoints need a few seconds to drop the pod", pre)
		}
		if need := time.Duration(pre)*time.Second + cfg.ShutdownWait; time.Duration(grace)*time.Second <= need+5*time.Second {
			t.Errorf("terminationGracePeriodSeconds %d does not cover preStop %ds + shutdown timeout %v + 5s", grace, pre, cfg.ShutdownWait)
		}
	})
	t.Run("OK probes and ports", func(t *testing.T) {
		port := get(c, "ports", 0)
		if str(get(port, "name")) != "http" || get(port, "containerPort") != 8080 {
			t.Fatalf("container port %v, want http 8080 (TANDEM_ADDR)", port)
		}
		for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
			hg := get(c, probe, "httpGet")
			if str(get(hg, "path")) != path || str(get(hg, "port")) != "http" {
				t.Errorf("%s %v, want GET %s on http", probe, hg, path)
			}
		}
		svc := byKind["Service/tandem"]
		if str(get(svc, "spec", "ports", 0, "targetPort")) != "http" {
			t.Errorf("Service targets %v", get(svc, "spec", "ports", 0, "targetPort"))
		}
		for what, sel := range map[string]any{
			"Deployment selector": get(dep, "spec", "selector", "matchLabels"),
			"Service selector":    get(svc, "spec", "selector"),
			"PDB selector":        get(byKind["PodDisruptionBudget/tandem"], "spec", "selector", "matchLabels"),
		} {
			m, _ := sel.(map[string]any)
			if len(m) == 0 {
				t.Errorf("%s is empty", what)
			}
			for k, v := range m {
				if labels[k] != v {
					t.Errorf("%s %s=%v does not select the pods (%v)", what, k, v, labels)
				}
			}
		}
		if get(byKind["PodDisruptionBudget/tandem"], "spec", "maxUnavailable") != 1 {
			t.Error("the PDB should let one node go at a time")
		}
	})
}

func TestDockerCompose(t *testing.T) {
	known := serveVariables(t)
	d := docs(t, filepath.Join(repo, "docker-compose.yml"))[0]
	services, _ := d["services"].(map[string]any)
	for _, s := range []string{"redis", "sandbox", "tandem1", "tandem2", "tandem3", "nginx"} {
		if services[s] == nil {
			t.Errorf("no service %s", s)
		}
	}
	nginx, err := os.ReadFile(filepath.Join(repo, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, name := range []string{"tandem1", "tandem2", "tandem3"} {
		s := services[name]
		env := map[string]string{}
		for k, v := range get(s, "environment").(map[string]any) {
			// ${VAR:?message} and ${VAR:-default}: what compose puts there.
			val := regexp.MustCompile(`\$\{([A-Z_]+):[?-]([^}]*)\}`).ReplaceAllStringFunc(str(v), func(m string) string {
				if strings.Contains(m, ":?") {
					return strings.Repeat("s", 40) // the operator's secret
				}
				return m[strings.Index(m, ":-")+2 : len(m)-1]
			})
			env[k] = val
		}
		cfg := checkNodeConfig(t, "compose service "+name, env, known)
		if cfg.NodeID != name || ids[cfg.NodeID] {
			t.Errorf("%s has node id %q", name, cfg.NodeID)
		}
		ids[cfg.NodeID] = true
		if cfg.security.Auth != "jwt" {
			t.Errorf("%s runs with TANDEM_AUTH=%s", name, cfg.security.Auth)
		}
		// max_fails=0: a paused or draining node must never take the
		// last upstream out of rotation (nginx would answer 502 "no live
		// upstreams", and an EventSource gives up on a 502).
		if !bytes.Contains(nginx, []byte("server "+name+":"+portOf(cfg.Addr)+" max_fails=0;")) {
			t.Errorf("nginx.conf has no upstream %s:%s with max_fails=0", name, portOf(cfg.Addr))
		}
		grace, err := time.ParseDuration(str(get(s, "stop_grace_period")))
		if err != nil || grace <= cfg.ShutdownWait+5*time.Second {
			t.Errorf("%s: stop_grace_period %v does not cover the shutdown timeout %v + 5s", name, get(s, "stop_grace_period"), cfg.ShutdownWait)
		}
		if str(get(s, "depends_on", "redis", "condition")) != "service_healthy" {
			t.Errorf("%s does not wait for a healthy Redis", name)
		}
	}
	for _, want := range []string{"proxy_buffering off", "proxy_read_timeout", "proxy_http_version 1.1",
		// Streams nobody could serve: 200 retry:, never a 5xx an
		// EventSource gives up on.
		"location ~ /events/stream$", "proxy_intercept_errors on", "error_page 502 503 504 = @sse_retry", "location @sse_retry", "return 200 \"retry: "} {
		if !bytes.Contains(nginx, []byte(want)) {
			t.Errorf("nginx.conf lacks %q (SSE through the proxy)", want)
		}
	}
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if _, err := strconv.Atoi(addr[i+1:]); err != nil {
		return "?"
	}
	return addr[i+1:]
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
