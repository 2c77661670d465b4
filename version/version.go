// Package version says which build of Tandem is running: the module
// version and the VCS commit Go recorded in the binary.
package version

import "runtime/debug"

// Info is the build of the running binary.
type Info struct {
	Module    string `json:"module"`
	Version   string `json:"version"`          // the module version, "(devel)" for a build from a work tree
	Commit    string `json:"commit,omitempty"` // vcs.revision
	Time      string `json:"time,omitempty"`   // vcs.time
	Modified  bool   `json:"modified"`         // vcs.modified: built from a tree with changes
	GoVersion string `json:"goVersion"`
}

// Stamp, when set at link time (-ldflags "-X
// github.com/tandem-dev/tandem/version.Stamp=v1.2.3", as the Dockerfile
// does for a build without .git), is the version.
var Stamp string

// Get reads the build information (debug.ReadBuildInfo).
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	in := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if Stamp != "" {
		in.Version = Stamp
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the one-line form `tandem version` prints.
func (in Info) String() string {
	s := in.Version
	if in.Commit != "" {
		s += " commit " + in.Commit
		if in.Modified {
			s += " (modified)"
		}
	}
	return s + " " + in.GoVersion
}
