package httpapi_test

import (
	"testing"

	"github.com/tandem-dev/tandem/httpapi"
)

// CORS origin patterns that would open the API to every site are refused.
func TestCORSOriginPatterns(t *testing.T) {
	for o, ok := range map[string]bool{
		"https://app.example": true, "http://127.0.0.1:3000": true, "https://*.example.com": true, "https://app.example:8443": true,
		"*": false, "https://*": false, "http://*": false, "https://*.com": false, "https://*:*": false, "https://app.example:*": false,
		"https://a.*.example": false, "https://*example.com": false, "null": false, "app.example": false, "https://app.example/": false,
		"https://app.example/path": false, "ftp://app.example": false, "https://u@app.example": false, "https://app.example?x": false,
	} {
		err := httpapi.Config{CORSOrigins: []string{o}}.Validate()
		if (err == nil) != ok {
			t.Errorf("origin %q: %v", o, err)
		}
	}
}
