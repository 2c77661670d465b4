// Package deploy holds no code: its directory is the deployment files
// (Kubernetes manifests, nginx, the Grafana dashboard, the Prometheus
// alert rules; see README.md), and its tests check the dashboard and the
// rules: promtool's own checks and unit tests, and that every metric they
// use is one a real node exports.
package deploy
