package mockagent

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults of a turn without directives.
const (
	DefaultChunks = 5
	DefaultDelay  = 20 * time.Millisecond
)

var directiveRE = regexp.MustCompile(`\[(?:chunks=(\d+)|delay=(\d+)ms|(tool)|(crash)|(permission)|(modes)|(diff))\]`)

// The edit the [diff] directive reports.
const (
	DiffPath = "notes.md"
	DiffOld  = "tandem: one rider\n"
	DiffNew  = "tandem: two riders\nsharing one bicycle\n"
)

// script is what a prompt asks of its turn.
type script struct {
	reply  string
	chunks []string
	delay  time.Duration
	tool   bool
	diff   bool // an edit tool call with its diff
	crash  bool
	// permission and modes count in the last text block only (the
	// user's own text, not a restored session's history).
	permission bool
	modes      bool
}

// Reply is the text the agent answers to a prompt made of these text blocks.
func Reply(texts ...string) string {
	return "You said: " + strings.TrimSpace(directiveRE.ReplaceAllString(strings.Join(texts, ""), ""))
}

// Chunks is how the agent splits the reply to a prompt made of these text
// blocks: the texts of its agent_message_chunk updates, in order.
func Chunks(texts ...string) []string { return parse(texts).chunks }

func parse(texts []string) script {
	joined := strings.Join(texts, "")
	s := script{reply: Reply(texts...), delay: DefaultDelay}
	n := DefaultChunks
	for _, m := range directiveRE.FindAllStringSubmatch(joined, -1) {
		switch {
		case m[1] != "":
			n = atoi(m[1])
		case m[2] != "":
			s.delay = time.Duration(atoi(m[2])) * time.Millisecond
		case m[3] != "":
			s.tool = true
		case m[4] != "":
			s.crash = true
		case m[7] != "":
			s.diff = true
		}
	}
	if len(texts) > 0 {
		for _, m := range directiveRE.FindAllStringSubmatch(texts[len(texts)-1], -1) {
			s.permission = s.permission || m[5] != ""
			s.modes = s.modes || m[6] != ""
		}
	}
	s.chunks = split(s.reply, n)
	return s
}

// atoi parses the digits the directive pattern matched, saturating instead of
// overflowing.
func atoi(digits string) int {
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 1 << 30
	}
	return n
}

// split cuts s into n non-empty pieces of nearly equal length in runes (fewer
// when s has fewer runes), whose concatenation is s.
func split(s string, n int) []string {
	r := []rune(s)
	n = max(1, min(n, len(r)))
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, string(r[i*len(r)/n:(i+1)*len(r)/n]))
	}
	return out
}
