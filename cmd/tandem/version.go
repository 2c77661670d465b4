package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/tandem-dev/tandem/version"
)

// defineVersion: tandem version [--json].
func defineVersion(fs *flag.FlagSet) runFunc {
	asJSON := fs.Bool("json", false, "print the build information as JSON (module, version, commit, time, modified, goVersion)")
	return func(args []string, stdout, _ io.Writer) error {
		if len(args) > 0 {
			return usageErrorf("takes no arguments, got %q", args[0])
		}
		in := version.Get()
		if *asJSON {
			return json.NewEncoder(stdout).Encode(in)
		}
		_, err := fmt.Fprintln(stdout, "tandem", in)
		return err
	}
}
