package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// .env.example lists every TANDEM_* variable the code outside tests reads
// (internal/ holds the test harnesses, whose variables are the tests'
// own), and nothing else: it cannot drift from the code.
func TestEnvExampleListsEverySetting(t *testing.T) {
	root := filepath.Join("..", "..")
	name := regexp.MustCompile(`TANDEM_[A-Z0-9_]*[A-Z0-9]`)
	read := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || rel == "internal" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, v := range name.FindAllString(string(b), -1) {
			read[v] = rel
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok || !name.MatchString(k) {
			t.Errorf(".env.example: line %q is not NAME=value", line)
			continue
		}
		if listed[k] {
			t.Errorf(".env.example lists %s twice", k)
		}
		listed[k] = true
	}
	if len(read) < 40 {
		t.Fatalf("found only %d variables in the code; is the walk broken?", len(read))
	}
	var missing, stale []string
	for k, file := range read {
		if !listed[k] {
			missing = append(missing, k+" (read in "+file+")")
		}
	}
	for k := range listed {
		if _, ok := read[k]; !ok {
			stale = append(stale, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	if len(missing) > 0 {
		t.Errorf(".env.example misses %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf(".env.example lists variables no code reads: %v", stale)
	}
}
