package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tandem-dev/tandem/internal/sandboxtest/mockagent"
)

// TestMain lets the test binary act as the command, so the tests below can
// drive the real main over OS pipes without building it first.
func TestMain(m *testing.M) {
	if os.Getenv("TANDEM_MOCKAGENT_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestStdio(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "TANDEM_MOCKAGENT_AS_MAIN=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	read := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("output ended: %v", lines.Err())
		}
		return lines.Text()
	}
	fmt.Fprintln(in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1,"clientCapabilities":{}}}`)
	if l := read(); !strings.Contains(l, `"protocolVersion":1`) {
		t.Fatalf("initialize answered %s", l)
	}
	fmt.Fprintln(in, `{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"/","mcpServers":[]}}`)
	l := read()
	_, sid, _ := strings.Cut(l, `"sessionId":"`)
	sid, _, _ = strings.Cut(sid, `"`)
	fmt.Fprintf(in, `{"jsonrpc":"2.0","id":3,"method":"session/prompt","params":{"sessionId":%q,"prompt":[{"type":"text","text":"[delay=0ms]hi"}]}}`+"\n", sid)
	var got strings.Builder
	for {
		l := read()
		if strings.Contains(l, `"stopReason":"end_turn"`) {
			break
		}
		_, text, _ := strings.Cut(l, `"text":"`)
		text, _, _ = strings.Cut(text, `"`)
		got.WriteString(text)
	}
	if got.String() != mockagent.Reply("hi") {
		t.Fatalf("reply %q", got.String())
	}

	t.Run("CrashExitsWithStatus2", func(t *testing.T) {
		fmt.Fprintf(in, `{"jsonrpc":"2.0","id":4,"method":"session/prompt","params":{"sessionId":%q,"prompt":[{"type":"text","text":"[crash]"}]}}`+"\n", sid)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2", err)
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Fatal("did not exit")
		}
	})
}
